//! Plain-English descriptions.

use drover_spec::schedule::CronExpr;

#[test]
fn descriptions() {
    let cases = [
        ("0 2 * * *", "every day at 02:00"),
        ("*/15 * * * *", "every 15 minutes"),
        ("30 9 * * 1-5", "at 09:30 on Monday to Friday"),
        ("0 0 1 * *", "at 00:00 on day 1 of the month"),
        ("0 * * * *", "every hour at minute 0"),
        ("0 6,18 * * 1", "at 06:00 and 18:00 on Monday"),
        ("* * * * *", "every minute"),
        ("* 9-17 * * *", "every minute between 09:00 and 17:59"),
        ("* 9,12,15 * * *", "every minute during hours 9, 12 and 15"),
        (
            "*/15 9-17 * * 1-5",
            "every 15 minutes between 09:00 and 17:45 on Monday to Friday",
        ),
        ("*/15 9,12 * * *", "every 15 minutes during hours 9 and 12"),
        (
            "1/10 * * * *",
            "every 10 minutes, starting at minute 1 of every hour",
        ),
        ("0 */2 * * *", "every 2 hours from 00:00 to 22:00"),
        ("23 0-20/2 * * *", "every 2 hours from 00:23 to 20:23"),
        ("30 9-17 * * *", "every hour from 09:30 to 17:30"),
        (
            "5 1,3,4,8,9,10,11 * * *",
            "every day at minute 5 past hours 1, 3, 4 and 8 to 11",
        ),
        ("*/7 * * * *", "every hour at minutes 0, 7, 14, ..., 56"),
        ("5,17,43 * * * *", "every hour at minutes 5, 17 and 43"),
        (
            "0,30 9-17 * * *",
            "every 30 minutes between 09:00 and 17:30",
        ),
        ("0,30 2 * * *", "every day at 02:00 and 02:30"),
        (
            "0 0 1,15 * 3",
            "at 00:00 on days 1 and 15 of the month and on Wednesday",
        ),
        (
            "0 0 */2 * 1",
            "at 00:00 on days 1, 3, 5, ..., 31 of the month, but only on Monday",
        ),
        ("0 0 29 2 *", "at 00:00 on February 29"),
        ("@yearly", "at 00:00 on January 1"),
        ("@weekly", "at 00:00 on Sunday"),
        ("@monthly", "at 00:00 on day 1 of the month"),
        ("@hourly", "every hour at minute 0"),
        (
            "0 9 * jan-mar mon,wed",
            "at 09:00 on Monday and Wednesday from January to March",
        ),
        ("0 6 * * fri-7", "at 06:00 on Friday to Sunday"),
        // Both day fields restricted, and the day-of-month one alone covers every day.
        ("0 0 1-31 * 1", "every day at 00:00"),
        ("0 0 * * 0,6", "at 00:00 on Saturday and Sunday"),
        (
            "0 0 1 1,4,7,10 *",
            "at 00:00 on day 1 of the month in January, April, July and October",
        ),
        ("0 12 1-7 * *", "at 12:00 on days 1 to 7 of the month"),
        (
            "0 0 1,15 6 *",
            "at 00:00 on days 1 and 15 of the month in June",
        ),
        ("*/5 * * 12 *", "every 5 minutes in December"),
        (
            "0,20,40 8,20 * * *",
            "every 20 minutes during hours 8 and 20",
        ),
        (
            "5,17 8,20,21 * * 1",
            "at minutes 5 and 17 past hours 8, 20 and 21 on Monday",
        ),
    ];
    for (expr, want) in cases {
        let got = CronExpr::parse(expr).expect("valid").describe();
        assert_eq!(got, want, "{expr}");
    }
}
