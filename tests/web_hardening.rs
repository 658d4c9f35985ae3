//! The web server under hostile input, against a real `drover web` process and Postgres: a
//! login flood costs bounded memory and leaves the server answering, odd request methods add
//! no metrics series, `next` never leaves the site, text Postgres cannot hold is answered
//! 422, and an environment's rows are shown only to the roles it names.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::COOKIE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::web::{self, add_user, api, client_from, login, start_web, token, try_login_with};
use support::{Drover, TestDb, Workspace, runtime, serial, server_url, synced, wait_finished};
use uuid::Uuid;

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.dag(
        "hello",
        "id: hello\nparams: { who: { type: string, default: world } }\ntasks:\n  - id: greet\n    command: { argv: [echo, \"hello {{ params.who }}\"] }\n",
    );
    ws
}

/// A kilobyte of the process's memory, from /proc/<pid>/status (`VmRSS`, `VmHWM`: the peak).
fn memory_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

fn loopback(c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, c, d))
}

/// One login attempt as a flooding script sends it: any matching cookie/field pair passes the
/// form's double-submit check, so every attempt reaches the password check.
async fn flood_attempt(c: &reqwest::Client, base: &str, name: &str) -> reqwest::Response {
    c.post(format!("{base}/login"))
        .header(COOKIE, "drover_login=flood")
        .form(&[
            ("_csrf", "flood"),
            ("next", "/dags"),
            ("name", name),
            ("password", "not-the-password"),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("flood POST: {e}"))
}

/// 2,000 logins with distinct user names from 200 addresses, 24 at a time. Each Argon2 check takes
/// 19 MiB (the default m = 19456 KiB) while it runs; the hashing threads (one per core but
/// one, at least one) bound how many run at once, so the peak memory stays within the
/// process's memory before the flood plus 128 MiB: room for the hashing threads' buffers and
/// the allocator's slack, where the 24 hashes at once the old code let 24 concurrent clients
/// start would need 456 MiB. Logins beyond the queue are answered 503 with
/// Retry-After at once; `/healthz` answers within a second throughout; one address gets 10
/// attempts, then 429; and a real user from another address logs in right after.
#[test]
fn a_login_flood_keeps_memory_bounded_and_the_server_answering() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["scheduler", "--once"]);
    add_user(&d, "admin", "admin");
    let vera_pw = add_user(&d, "vera", "viewer");
    runtime().block_on(async {
        let (web, base) = start_web(&d, &[]).await;
        let pid = web.pid();
        // Warm up: one failed and one good login (the decoy hash for unknown names is made).
        let warm = flood_attempt(&client_from(loopback(9, 1)), &base, "nobody").await;
        assert_eq!(warm.status(), StatusCode::UNAUTHORIZED);
        let _ = login(&base, "vera", &vera_pw).await;
        let before = memory_kib(pid, "VmRSS");

        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The prober has a thread and a runtime of its own, so the flooding clients of this
        // test do not delay it: what it measures is the server.
        let prober = {
            let (base, done) = (base.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"));
                rt.block_on(async move {
                    let c = web::client();
                    let mut probes = Vec::new();
                    while !done.load(std::sync::atomic::Ordering::SeqCst) {
                        let began = Instant::now();
                        let r = tokio::time::timeout(
                            Duration::from_secs(1),
                            c.get(format!("{base}/healthz")).send(),
                        )
                        .await;
                        let answered = matches!(&r, Ok(Ok(r)) if r.status().is_success());
                        probes.push((began.elapsed().as_millis(), answered));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    probes
                })
            })
        };

        let began = Instant::now();
        let mut flooders = Vec::new();
        // 24 clients at once, each from its own address, 200 addresses in all.
        let turns = Arc::new(tokio::sync::Semaphore::new(24));
        for a in 0..200u16 {
            let (base, turns) = (base.clone(), Arc::clone(&turns));
            flooders.push(tokio::spawn(async move {
                let _turn = turns.acquire_owned().await;
                let ip = loopback(10 + (a / 100) as u8, (a % 100) as u8 + 1);
                let c = client_from(ip);
                let mut seen = Vec::new();
                for i in 0..10 {
                    let r = flood_attempt(&c, &base, &format!("flood-{a}-{i}")).await;
                    let retry_after = r.headers().contains_key("retry-after");
                    seen.push((r.status().as_u16(), retry_after));
                }
                seen
            }));
        }
        let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
        for f in flooders {
            for (status, retry_after) in f.await.unwrap_or_else(|e| panic!("{e}")) {
                if status == 503 {
                    assert!(retry_after, "a busy answer says when to retry");
                }
                *by_status.entry(status).or_default() += 1;
            }
        }
        let flood_took = began.elapsed();
        let peak = memory_kib(pid, "VmHWM");
        let after = memory_kib(pid, "VmRSS");
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let probes = prober.join().unwrap_or_else(|_| panic!("the prober failed"));
        let failed = probes.iter().filter(|(_, ok)| !ok).count();
        let mut took_ms: Vec<u128> = probes.iter().map(|(ms, _)| *ms).collect();
        took_ms.sort_unstable();
        let (median, slowest) = (took_ms[took_ms.len() / 2], took_ms[took_ms.len() - 1]);
        eprintln!(
            "flood: {by_status:?} in {flood_took:?}; RSS {before} kB before, {after} kB after, peak {peak} kB; /healthz {} probes, median {median} ms, slowest {slowest} ms, {failed} unanswered within 1 s",
            probes.len()
        );
        assert_eq!(failed, 0, "/healthz did not answer within 1 s {failed} times");
        assert!(slowest < 1000, "/healthz took {slowest} ms");
        assert_eq!(by_status.values().sum::<usize>(), 2000);
        assert!(
            by_status.keys().all(|s| [401, 503].contains(s)),
            "every attempt was checked (401) or refused as busy (503): {by_status:?}"
        );
        assert!(
            by_status.get(&503).copied().unwrap_or(0) > 0,
            "24 clients at once exceed the hashing threads and their queue: {by_status:?}"
        );
        assert!(
            by_status.get(&401).copied().unwrap_or(0) > 0,
            "{by_status:?}"
        );
        assert!(flood_took < Duration::from_secs(120), "{flood_took:?}");
        assert!(
            peak < before + 128 * 1024,
            "peak RSS {peak} kB exceeds {before} kB + 128 MiB"
        );

        // One address: 10 attempts at once, then 429 with Retry-After.
        let c = client_from(loopback(20, 1));
        for i in 0..10 {
            let r = flood_attempt(&c, &base, &format!("again-{i}")).await;
            assert_ne!(r.status(), StatusCode::TOO_MANY_REQUESTS, "attempt {i}");
        }
        let r = flood_attempt(&c, &base, "again-10").await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!((1..=60).contains(&wait), "Retry-After {wait}");
        let body = r.text().await.unwrap_or_default();
        assert!(body.contains("Too many login attempts"), "{body}");
        // Even the right password waits its turn from that address...
        let refused = try_login_with(c, &base, "vera", &vera_pw).await;
        assert!(refused.is_err(), "the limited address logged in");
        // ...while a real user elsewhere logs in at once.
        let vera = try_login_with(client_from(loopback(30, 1)), &base, "vera", &vera_pw)
            .await
            .unwrap_or_else(|a| panic!("login after the flood: {} {}", a.status, a.body));
        assert_eq!(vera.get("/dags").await.status, StatusCode::OK);
    });
}

fn http_series(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|l| l.starts_with("drover_http_request_duration_seconds"))
        .count()
}

#[test]
fn odd_methods_and_paths_add_no_metrics_series() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["scheduler", "--once"]);
    runtime().block_on(async {
        let (_web, base) = start_web(&d, &[]).await;
        let c = web::client();
        let odd = |i: usize| {
            Method::from_bytes(format!("ODD{i:04}{}", "X".repeat(1000)).as_bytes())
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let paths = ["/dags", "/api/dags", "/login", "/no/such/page"];
        // Every route and method label once, so what follows could only add series.
        for p in paths {
            for m in [Method::GET, odd(9999)] {
                let _ = c.request(m, format!("{base}{p}")).send().await;
            }
        }
        let metrics = |c: reqwest::Client, base: String| async move {
            c.get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .text()
                .await
                .unwrap_or_default()
        };
        let before = metrics(c.clone(), base.clone()).await;
        assert!(
            before.contains("method=\"other\""),
            "the odd method is counted as other: {before}"
        );
        for i in 0..1000 {
            let path = match i % 4 {
                3 => format!("/no/such/page/{i}"),
                n => paths[n].to_owned(),
            };
            let r = c
                .request(odd(i), format!("{base}{path}"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(r.status().is_client_error(), "{}", r.status());
        }
        let after = metrics(c.clone(), base.clone()).await;
        assert_eq!(
            http_series(&before),
            http_series(&after),
            "1,000 odd methods added series"
        );
        assert!(!after.contains("ODD0"), "a method became a label");
        assert!(!after.contains("/no/such"), "a path became a label");
        assert!(
            after.len() < before.len() + 4096,
            "{} → {} bytes",
            before.len(),
            after.len()
        );
    });
}

#[test]
fn next_with_control_characters_stays_on_site() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["scheduler", "--once"]);
    let vera_pw = add_user(&d, "vera", "viewer");
    runtime().block_on(async {
        let (_web, base) = start_web(&d, &[]).await;
        let c = web::client();
        // Browsers drop tab, CR and LF from URLs and read `\` as `/`: each of these would be
        // `//evil.example`, another site.
        for next in [
            "/%09/evil.example",
            "/%0d/evil.example",
            "/%0a/evil.example",
            "/%0d%0a/evil.example",
            "/%5c/evil.example",
            "/%5C%5Cevil.example",
            "/%2509/evil.example",
            "/%255c/evil.example",
            "%09//evil.example",
        ] {
            let r = c
                .get(format!("{base}/login?next={next}"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let html = r.text().await.unwrap_or_default();
            assert!(
                html.contains("name=\"next\" value=\"/dags\""),
                "next={next}: {html}"
            );
        }
        // A good `next` is kept.
        let r = c
            .get(format!("{base}/login?next=/runs%3Fenv%3Ddev"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let html = r.text().await.unwrap_or_default();
        assert!(
            html.contains("name=\"next\" value=\"/runs?env=dev\""),
            "{html}"
        );
        // Posting the form with such a `next` logs in and stays on site.
        for next in ["/\t/evil.example", "/\r\n/evil.example", "/\\evil.example"] {
            let page = c
                .get(format!("{base}/login"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let cookie = page
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| v.split(';').next()?.strip_prefix("drover_login="))
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("no login cookie"));
            let r = c
                .post(format!("{base}/login"))
                .header(COOKIE, format!("drover_login={cookie}"))
                .form(&[
                    ("_csrf", cookie.as_str()),
                    ("next", next),
                    ("name", "vera"),
                    ("password", vera_pw.as_str()),
                ])
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "next={next:?}");
            assert_eq!(
                r.headers().get("location").and_then(|v| v.to_str().ok()),
                Some("/dags"),
                "next={next:?}"
            );
        }
    });
}

fn assert_api_422(a: &web::Answer, mentions: &str) {
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    let v: Value =
        serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", a.body));
    assert_eq!(v["error"]["status"], 422, "{}", a.body);
    assert_eq!(v["error"]["code"], "invalid", "{}", a.body);
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(mentions), "{message}");
}

#[test]
fn nul_and_invalid_text_are_answered_422_not_500() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["scheduler", "--once"]);
    add_user(&d, "admin", "admin");
    let otto_pw = add_user(&d, "otto", "operator");
    runtime().block_on(async {
        let (_web, base) = start_web(&d, &[]).await;
        let base = base.as_str();
        let t = token(&d, "otto");
        // The API: a JSON body, a query parameter, a path segment.
        let a = api(
            base,
            Method::POST,
            "/api/dags/hello/runs",
            Some(&t),
            Some(json!({ "environment": "dev", "params": { "who": "a\u{0}b" } })),
        )
        .await;
        assert_api_422(&a, "`params.who` contains a NUL character");
        let a = api(base, Method::GET, "/api/dags?env=de%00v", Some(&t), None).await;
        assert_api_422(&a, "the query parameter `env` contains a NUL character");
        let a = api(
            base,
            Method::GET,
            "/api/dags/he%00llo?env=dev",
            Some(&t),
            None,
        )
        .await;
        assert_api_422(&a, "NUL");
        let a = api(base, Method::GET, "/api/dags?env=%FF", Some(&t), None).await;
        assert_api_422(&a, "not valid UTF-8");
        // Forms: the login form (no session) and a logged-in user's form.
        let c = web::client();
        let r = c
            .post(format!("{base}/login"))
            .header(COOKIE, "drover_login=x")
            .form(&[("_csrf", "x"), ("name", "ot\0to"), ("password", "whatever")])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap_or_default();
        assert!(html.contains("<html"), "an error page: {html}");
        assert!(
            html.contains("the form field `name` contains a NUL character"),
            "{html}"
        );
        assert!(!html.contains("invalid byte sequence"), "{html}");
        let otto = login(base, "otto", &otto_pw).await;
        let a = otto
            .post("/dags/hello/trigger", &[("env", "dev"), ("who", "a\0b")])
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
        assert!(a.body.contains("NUL character"), "{}", a.body);
        // Nothing was triggered, and the same requests without NUL work.
        let a = api(
            base,
            Method::POST,
            "/api/dags/hello/runs",
            Some(&t),
            Some(json!({ "environment": "dev", "params": { "who": "ann" } })),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        let runs = api(
            base,
            Method::GET,
            "/api/dags/hello/runs?env=dev",
            Some(&t),
            None,
        )
        .await;
        let runs: Value = serde_json::from_str(&runs.body).unwrap_or_default();
        assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "{runs}");
    });
}

const LEADS: &str = "id: leads\ntasks:\n  - id: export\n    sql: \"create table {{ output }} as select 'ann@example.com'::text as email, 42 as score\"\n";

/// PROD (`rows_visible_to: operator`) shows its rows to operators and admins only; a viewer
/// sees the count, the columns and why the rows are hidden, on the page and in the API. DEV
/// (the default, `viewer`) shows its rows to everyone.
#[test]
fn prod_rows_show_only_to_operators_while_dev_rows_show_to_viewers() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag("leads", LEADS);
    std::fs::write(
        ws.environments().join("prod.yaml"),
        "name: prod\norder: 2\nmap:\n  kind: marketo\n  base_url: http://127.0.0.1:9\n  client_id: { env: X_ID }\n  client_secret: { env: X_SECRET }\nrows_visible_to: operator\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    add_user(&d, "admin", "admin");
    let vera_pw = add_user(&d, "vera", "viewer");
    let otto_pw = add_user(&d, "otto", "operator");
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 2, 10.0);
    runtime().block_on(async {
        let store = db.store().await;
        synced(&store, "leads").await;
        let mut runs = Vec::new();
        for env in ["dev", "prod"] {
            let id = d.ok(&["runs", "trigger", "leads", "--env", env, "--as", "admin"]);
            let id = Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{e}: {id}"));
            let row = wait_finished(&store, id, Duration::from_secs(60)).await;
            assert_eq!(row.state, drover_store::RunState::Success, "{env}: {row:?}");
            runs.push(id);
        }
        let (dev, prod) = (runs[0], runs[1]);
        let (_web, base) = start_web(&d, &[]).await;
        let base = base.as_str();
        let vera = login(base, "vera", &vera_pw).await;
        let otto = login(base, "otto", &otto_pw).await;
        let hidden = "Rows of PROD datasets are visible to operators and admins";

        let page = vera.get(&format!("/runs/{prod}/datasets/export")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(!page.body.contains("ann@example.com"), "{}", page.body);
        assert!(page.body.contains(hidden), "{}", page.body);
        assert!(page.body.contains("1 rows, 2 columns"), "{}", page.body);
        assert!(
            page.body.contains("<td>email</td>"),
            "the columns are listed"
        );
        let page = otto.get(&format!("/runs/{prod}/datasets/export")).await;
        assert!(page.body.contains("ann@example.com"), "{}", page.body);
        assert!(!page.body.contains(hidden), "{}", page.body);
        let page = vera.get(&format!("/runs/{dev}/datasets/export")).await;
        assert!(page.body.contains("ann@example.com"), "{}", page.body);
        // The run page itself never lists rows for a viewer either.
        let page = vera.get(&format!("/runs/{prod}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.body.contains("ann@example.com"), "{}", page.body);

        // The API: rows null with the reason for a viewer; the rows for an operator.
        let path = |run: Uuid| format!("/api/runs/{run}/tasks/export/rows");
        let (tv, to) = (token(&d, "vera"), token(&d, "otto"));
        let a = api(base, Method::GET, &path(prod), Some(&tv), None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert!(!a.body.contains("ann@example.com"), "{}", a.body);
        let v: Value = serde_json::from_str(&a.body).unwrap_or_default();
        assert_eq!(v["rows"], Value::Null, "{v}");
        assert!(
            v["rows_hidden"]
                .as_str()
                .is_some_and(|s| s.contains(hidden)),
            "{v}"
        );
        assert_eq!(v["row_count"], 1, "{v}");
        assert_eq!(v["columns"][0]["name"], "email", "{v}");
        let a = api(base, Method::GET, &path(prod), Some(&to), None).await;
        let v: Value = serde_json::from_str(&a.body).unwrap_or_default();
        assert_eq!(v["rows"], json!([["ann@example.com", "42"]]), "{v}");
        assert_eq!(v["rows_hidden"], Value::Null, "{v}");
        let a = api(base, Method::GET, &path(dev), Some(&tv), None).await;
        let v: Value = serde_json::from_str(&a.body).unwrap_or_default();
        assert_eq!(v["rows"], json!([["ann@example.com", "42"]]), "{v}");
    });
}
