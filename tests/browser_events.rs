//! In a real headless Chromium, as an operator: the DAG page lists its events with their
//! runs and outcomes, says how to send one when there are none, and replays — one event with
//! its Replay button (on to the new run, which says it is a replay of that event and by whom,
//! and succeeds), and a time range with the form (back with a notice, the replays listed).

mod support;

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use support::browser::{Browser, screenshots_dir as shots};
use support::events::{accept, workspace};
use support::web::{add_user, start_web};
use support::{Drover, TestDb, eventually, runtime, serial, server_url, wait_finished};
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);

#[test]
fn an_operator_sees_a_dags_events_and_replays_one_and_a_range_in_the_browser() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    add_user(&d, "admin", "admin");
    let otto = add_user(&d, "otto", "operator");
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 2, 5.0);
    runtime().block_on(async {
        let store = db.store().await;
        eventually("contact in dev", LONG, || async {
            store.dag_env("contact", "dev").await.ok()
        })
        .await;
        let mut fills = Vec::new();
        for n in 1..=2 {
            let fill = json!({ "fillId": format!("fill-{n}"), "email": format!("lead{n}@example.com") });
            let a = accept(&store, "dev", "contact", "form", fill, Some(&format!("fill-{n}")), None).await;
            assert_eq!(wait_finished(&store, a.run_id, LONG).await.state.as_str(), "success");
            fills.push(a);
        }
        let (_web, web) = start_web(&d, &[]).await;
        let b = Browser::start().await;
        b.goto(&format!("{web}/login")).await;
        b.find("#name").await.type_text("otto").await;
        b.find("#password").await.type_text(&otto).await;
        b.find("#login").await.click().await;
        b.wait_for_url("/dags", LONG).await;

        // No events yet: how to send one.
        b.goto(&format!("{web}/dags/gone?env=dev")).await;
        let empty = b.find("#events-empty").await.text().await;
        assert!(empty.contains("No events yet in dev"), "{empty}");
        assert!(empty.contains("/hooks/dev/gone/form") && empty.contains("Bearer <the form_hook secret of dev>"), "{empty}");

        // The events, newest first, with their runs and outcomes.
        b.goto(&format!("{web}/dags/contact?env=dev")).await;
        let rows = b.find_all("#events tr[data-event]").await;
        assert_eq!(rows.len(), 2);
        let first_row = format!("#events tr[data-event='{}']", fills[0].event_id);
        let row = b.find(&first_row).await.text().await;
        assert!(row.contains("fill-1") && row.contains("10.0.0.4") && row.contains("succeeded"), "{row}");
        let head = b.find("#events thead").await.text().await;
        assert!(head.contains("New York time"), "{head}");
        b.execute("document.querySelector('#events').scrollIntoView();", &[]).await;
        b.screenshot(shots().join("dag-events.png")).await;

        // Replay one: on to its new run, which says what it is and succeeds.
        b.execute("window.confirm = () => true;", &[]).await;
        b.find(&format!("{first_row} button.replay-event")).await.click().await;
        let url = b.wait_for_url("done=replayed", LONG).await;
        let run = url
            .split("/runs/")
            .nth(1)
            .and_then(|s| s.split('?').next())
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_else(|| panic!("no run in {url}"));
        let said = b.find("#started-by").await.text().await;
        let tail = {
            let s = fills[0].event_id.simple().to_string();
            s[s.len() - 8..].to_owned()
        };
        assert!(said.contains(&format!("Replay of event …{tail} by otto")), "{said}");
        b.wait_for_text("#run-state", "succeeded", LONG).await;
        assert_eq!(store.get_run(run).await.map(|r| r.run_type.as_str()).ok(), Some("replay"));
        b.find("#replayed-event").await.click().await;
        b.wait_for_url(&format!("/events/{}", fills[0].event_id), LONG).await;
        assert!(b.find("#payload").await.text().await.contains("lead1@example.com"));
        assert_eq!(b.find_all("#event-replays li").await.len(), 1);

        // Replay a range: both original events, in New York time, back with a notice.
        b.goto(&format!("{web}/dags/contact?env=dev")).await;
        let ny = |t: chrono::DateTime<Utc>| {
            t.with_timezone(&chrono_tz::America::New_York)
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string()
        };
        let from = store.event(fills[0].event_id).await.map(|e| e.received_at).unwrap_or_else(|_| Utc::now());
        let to = store.event(fills[1].event_id).await.map(|e| e.received_at).unwrap_or_else(|_| Utc::now());
        b.find("#replay-range summary").await.click().await;
        b.execute(
            "document.querySelector('#replay-from').value = arguments[0]; document.querySelector('#replay-to').value = arguments[1];",
            &[json!(ny(from)), json!(ny(to + chrono::Duration::seconds(1)))],
        )
        .await;
        b.find("#replay-range-submit").await.click().await;
        b.wait_for_url("done=replayed_range", LONG).await;
        let notice = b.page_text().await;
        assert!(notice.contains("Replayed: the events of that range run again"), "{notice}");
        let replays = b.find_all("#events tr[data-kind=replay]").await;
        assert_eq!(replays.len(), 3, "one replay, then the range's two");
        let ranged = store
            .dag_events("contact", "dev", None, None, 10)
            .await
            .unwrap_or_default();
        for e in ranged.iter().filter(|e| e.kind == "replay") {
            if let Some(r) = e.run_id {
                assert_eq!(wait_finished(&store, r, LONG).await.state.as_str(), "success");
            }
        }
        b.goto(&format!("{web}/runs/{run}")).await;
        b.screenshot(shots().join("run-replay.png")).await;
    });
}
