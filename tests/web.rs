//! The web UI and JSON API against a real `drover web` process and Postgres: roles decide
//! every state-changing route (forms, API and CLI alike), forms need the session's CSRF
//! token, logins are throttled, no secret ever renders, and errors have one shape.

mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::web::{self, Session, add_user, api, login, start_web, token, try_login};
use support::{Drover, TestDb, Workspace, eventually, runtime, serial, server_url};
use uuid::Uuid;

const SECRET: &str = "map-secret-9f8e7d6c5b4a";

/// dev (folder DAGs) and prod (only admins promote, with approval); DAGs `hello` (a param,
/// one task) and `boom` (fails).
fn workspace() -> Workspace {
    let ws = Workspace::new();
    std::fs::write(
        ws.environments().join("prod.yaml"),
        "name: prod\norder: 2\nmap:\n  kind: marketo\n  base_url: http://127.0.0.1:9\n  client_id: { env: X_ID }\n  client_secret: { env: X_SECRET }\npromotion:\n  allowed_roles: [admin]\n  require_approval: true\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    ws.dag(
        "hello",
        "id: hello\ndescription: Says hello\nowner: ops@example.com\ntags: [demo]\nparams: { who: { type: string, default: world } }\ntasks:\n  - id: greet\n    command: { argv: [echo, \"hello {{ params.who }}\"] }\n",
    );
    ws.dag(
        "boom",
        "id: boom\ntasks:\n  - id: explode\n    retries: 0\n    command: { shell: \"echo the MAP said no >&2; exit 3\" }\n",
    );
    ws
}

struct World {
    base: String,
    admin: String,
    passwords: std::collections::HashMap<&'static str, String>,
}

/// Users: admin; vera (viewer); otto (operator); olga (operator, but viewer in prod).
fn users(d: &Drover<'_>) -> std::collections::HashMap<&'static str, String> {
    let mut p = std::collections::HashMap::new();
    p.insert("admin", add_user(d, "admin", "admin"));
    p.insert("vera", add_user(d, "vera", "viewer"));
    p.insert("otto", add_user(d, "otto", "operator"));
    p.insert("olga", add_user(d, "olga", "operator"));
    d.ok(&[
        "users", "role", "olga", "viewer", "--env", "prod", "--as", "admin",
    ]);
    p
}

fn status(a: &web::Answer) -> u16 {
    a.status.as_u16()
}

#[test]
fn every_state_changing_route_checks_role_and_csrf_in_forms_api_and_cli() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["scheduler", "--once"]);
    let passwords = users(&d);
    runtime().block_on(async {
        let (_web, base) = start_web(&d, &[]).await;
        let world = World {
            admin: passwords["admin"].clone(),
            passwords,
            base,
        };
        let base = world.base.as_str();
        let run = d.ok(&["runs", "trigger", "hello", "--env", "dev", "--as", "admin"]);
        let run = Uuid::parse_str(&run).unwrap_or_else(|e| panic!("{e}"));
        // Start it (its task instances exist), with no worker to run them.
        d.ok(&["scheduler", "--once"]);
        let vera = login(base, "vera", &world.passwords["vera"]).await;
        let otto = login(base, "otto", &world.passwords["otto"]).await;
        let olga = login(base, "olga", &world.passwords["olga"]).await;
        let admin = login(base, "admin", &world.admin).await;

        // Forms: (path, fields) that a viewer may not use; each answers 403 to vera.
        let runs = format!("/runs/{run}");
        let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
            ("/dags/hello/trigger".into(), vec![("env", "dev")]),
            ("/dags/hello/pause".into(), vec![("env", "dev")]),
            ("/dags/hello/unpause".into(), vec![("env", "dev")]),
            (format!("{runs}/mark"), vec![("state", "failed")]),
            (format!("{runs}/clear"), vec![("task", "greet")]),
            (format!("{runs}/rerun-failed"), vec![]),
            (format!("{runs}/revert"), vec![("task", "greet")]),
            (format!("{runs}/tasks/greet/approve"), vec![]),
            (format!("{runs}/tasks/greet/reject"), vec![("reason", "no")]),
            ("/environments/prod/promote".into(), vec![]),
            ("/environments/prod/approve".into(), vec![]),
            ("/environments/prod/reject".into(), vec![]),
            ("/environments/prod/rollback".into(), vec![]),
            (
                "/admin/users".into(),
                vec![
                    ("name", "mallory"),
                    ("role", "admin"),
                    ("password", "0123456789ab"),
                ],
            ),
            ("/admin/users/vera/role".into(), vec![("role", "admin")]),
            ("/admin/users/otto/disable".into(), vec![]),
        ];
        for (path, fields) in &forms {
            let a = vera.post(path, fields).await;
            assert_eq!(status(&a), 403, "viewer POST {path}: {}", a.body);
            assert!(a.body.contains("may not"), "{path}: {}", a.body);
        }
        // Admin-only routes refuse operators too; prod's promotion is for admins only.
        for (path, fields) in forms.iter().skip(9) {
            let a = otto.post(path, fields).await;
            assert_eq!(status(&a), 403, "operator POST {path}: {}", a.body);
        }
        // A role per environment: olga operates dev but only views prod.
        let a = olga.post("/dags/hello/pause", &[("env", "prod")]).await;
        assert_eq!(status(&a), 403, "{}", a.body);
        assert!(a.body.contains("viewer in `prod`"), "{}", a.body);
        let a = olga.post("/dags/hello/pause", &[("env", "dev")]).await;
        assert_eq!(status(&a), 303, "{}", a.body);
        let a = olga.post("/dags/hello/unpause", &[("env", "dev")]).await;
        assert_eq!(status(&a), 303, "{}", a.body);

        // CSRF: missing or wrong tokens are refused even for a user who may act.
        let a = otto.post_raw("/dags/hello/pause", &[("env", "dev")]).await;
        assert_eq!(status(&a), 403, "no token: {}", a.body);
        let a = otto
            .post_raw(
                "/dags/hello/pause",
                &[("env", "dev"), ("_csrf", &vera.csrf)],
            )
            .await;
        assert_eq!(status(&a), 403, "another session's token: {}", a.body);
        let a = otto.post_raw("/logout", &[]).await;
        assert_eq!(status(&a), 403, "logout without token: {}", a.body);
        // Without a session, forms send you to log in.
        let nobody = Session {
            cookie: String::new(),
            ..login(base, "vera", &world.passwords["vera"]).await
        };
        let a = nobody.post("/dags/hello/pause", &[("env", "dev")]).await;
        assert_eq!(status(&a), 303);
        assert!(a.location.unwrap_or_default().starts_with("/login"));

        // Operators act: trigger, pause, unpause, mark, clear.
        let a = otto
            .post(
                "/dags/hello/trigger",
                &[("env", "dev"), ("param.who", "otto")],
            )
            .await;
        assert_eq!(status(&a), 303, "{}", a.body);
        let triggered = a.location.unwrap_or_default();
        assert!(triggered.starts_with("/runs/"), "{triggered}");
        let store = db.store().await;
        let new_run = Uuid::parse_str(
            triggered
                .trim_start_matches("/runs/")
                .split('?')
                .next()
                .unwrap_or(""),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let row = store
            .get_run(new_run)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(row.params, json!({ "who": "otto" }));
        assert_eq!(row.triggered_by.as_deref(), Some("otto"));
        let a = otto
            .post(
                "/dags/hello/trigger",
                &[("env", "dev"), ("param.nope", "x")],
            )
            .await;
        assert_eq!(status(&a), 422, "{}", a.body);
        assert!(a.body.contains("has no parameter `nope`"), "{}", a.body);
        for path in ["/dags/hello/pause", "/dags/hello/unpause"] {
            let a = otto.post(path, &[("env", "dev")]).await;
            assert_eq!(status(&a), 303, "{path}: {}", a.body);
        }
        let a = otto.post("/dags/hello/unpause", &[("env", "dev")]).await;
        assert_eq!(status(&a), 409, "already unpaused: {}", a.body);
        let a = otto
            .post(&format!("{runs}/mark"), &[("state", "failed")])
            .await;
        assert_eq!(status(&a), 303, "{}", a.body);
        assert_eq!(
            store
                .get_run(run)
                .await
                .map(|r| r.state.as_str())
                .unwrap_or_default(),
            "failed"
        );
        let a = otto
            .post(&format!("{runs}/clear"), &[("task", "greet")])
            .await;
        assert_eq!(status(&a), 303, "{}", a.body);
        let a = otto
            .post(&format!("{runs}/revert"), &[("task", "greet")])
            .await;
        assert_eq!(status(&a), 422, "nothing to revert: {}", a.body);
        // Admins pass the role check; this process has no DAG repository to promote from.
        let a = admin.post("/environments/prod/promote", &[]).await;
        assert_eq!(status(&a), 503, "{}", a.body);
        assert!(a.body.contains("--repo"), "{}", a.body);
        let a = admin
            .post(
                "/admin/users",
                &[
                    ("name", "nina"),
                    ("role", "viewer"),
                    ("password", "nina-password-1"),
                ],
            )
            .await;
        assert_eq!(status(&a), 303, "{}", a.body);
        let _nina = login(base, "nina", "nina-password-1").await;
        let a = vera.post("/account/tokens", &[("label", "mine")]).await;
        assert_eq!(
            status(&a),
            200,
            "a viewer makes their own token: {}",
            a.body
        );

        // The API: no token 401, a viewer's token 403 on every write, an operator's works.
        let vt = token(&d, "vera");
        let ot = token(&d, "otto");
        let writes: Vec<(String, serde_json::Value)> = vec![
            (
                "/api/dags/hello/runs".into(),
                json!({ "environment": "dev" }),
            ),
            (
                "/api/dags/hello/pause".into(),
                json!({ "environment": "dev" }),
            ),
            (
                "/api/dags/hello/unpause".into(),
                json!({ "environment": "dev" }),
            ),
            (
                format!("/api/runs/{run}/mark"),
                json!({ "state": "success" }),
            ),
            (
                format!("/api/runs/{run}/clear"),
                json!({ "tasks": ["greet"] }),
            ),
            (format!("/api/runs/{run}/tasks/greet/revert"), json!({})),
            ("/api/environments/prod/promote".into(), json!({})),
            ("/api/environments/prod/approve".into(), json!({})),
            ("/api/environments/prod/reject".into(), json!({})),
            ("/api/environments/prod/rollback".into(), json!({})),
        ];
        for (path, body) in &writes {
            let a = api(base, Method::POST, path, None, Some(body.clone())).await;
            assert_eq!(status(&a), 401, "no token {path}: {}", a.body);
            let a = api(base, Method::POST, path, Some(&vt), Some(body.clone())).await;
            assert_eq!(status(&a), 403, "viewer token {path}: {}", a.body);
            let e: serde_json::Value = serde_json::from_str(&a.body).unwrap_or_default();
            assert_eq!(e["error"]["code"], "forbidden", "{}", a.body);
        }
        let a = api(
            base,
            Method::POST,
            "/api/dags/hello/runs",
            Some(&ot),
            Some(json!({ "environment": "dev", "params": { "who": "api" } })),
        )
        .await;
        assert_eq!(status(&a), 201, "{}", a.body);
        let a = api(
            base,
            Method::POST,
            "/api/environments/prod/approve",
            Some(&ot),
            None,
        )
        .await;
        assert_eq!(status(&a), 403, "{}", a.body);
        // A session cookie works for the API only with the CSRF header.
        let a = otto
            .api(
                "/api/dags/hello/runs",
                json!({ "environment": "dev" }),
                false,
            )
            .await;
        assert_eq!(status(&a), 403, "{}", a.body);
        let a = otto
            .api(
                "/api/dags/hello/runs",
                json!({ "environment": "dev" }),
                true,
            )
            .await;
        assert_eq!(status(&a), 201, "{}", a.body);

        // The CLI follows the same rules once users exist.
        let out = d.run(&["runs", "trigger", "hello", "--env", "dev", "--as", "vera"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("refused: vera is a viewer"), "{err}");
        let out = d.run(&["dags", "pause", "hello", "--env", "prod", "--as", "olga"]);
        assert!(!out.status.success(), "olga only views prod");
        let out = d.run(&["runs", "trigger", "hello", "--env", "dev", "--as", "nobody"]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("no Drover user named `nobody`"));
        d.ok(&["runs", "trigger", "hello", "--env", "dev", "--as", "otto"]);
        let out = d.run(&["users", "add", "eve", "--as", "otto"]);
        assert!(!out.status.success(), "operators do not manage users");

        // Every action is in the audit trail, with who did it.
        let events = store
            .audit_page(&drover_store::AuditFilter {
                limit: 500,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for (actor, action) in [
            ("otto", "run.trigger"),
            ("otto", "dag.pause"),
            ("olga", "dag.pause"),
            ("otto", "run.mark"),
            ("otto", "task.clear"),
            ("vera", "user.login"),
            ("admin", "user.add"),
            ("vera", "user.token.create"),
        ] {
            assert!(
                events
                    .iter()
                    .any(|e| e.actor == actor && e.action == action),
                "no {action} by {actor} in the audit trail"
            );
        }
    });
}

#[test]
fn logins_are_throttled_sessions_end_at_logout_and_next_stays_on_site() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["scheduler", "--once"]);
    let passwords = users(&d);
    runtime().block_on(async {
        let (_web, base) = start_web(&d, &[]).await;
        let base = base.as_str();
        // Pages need a login, and come back to where you were.
        let c = web::client();
        let r = c
            .get(format!("{base}/dags/hello?env=dev"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers().get("location").and_then(|v| v.to_str().ok()),
            Some("/login?next=/dags/hello%3Fenv%3Ddev")
        );
        // Wrong password, unknown user: the same answer.
        for (name, pw) in [("vera", "wrong-password"), ("nobody", "whatever-password")] {
            let a = try_login(base, name, pw)
                .await
                .err()
                .unwrap_or_else(|| panic!("logged in"));
            assert_eq!(a.status, StatusCode::UNAUTHORIZED);
            assert!(a.body.contains("do not match"), "{}", a.body);
        }
        // Five failures for one user lock that user's logins for a while, even with the
        // right password; other users are not affected.
        for _ in 0..4 {
            let _ = try_login(base, "vera", "wrong-password").await;
        }
        let a = try_login(base, "vera", &passwords["vera"])
            .await
            .err()
            .unwrap_or_else(|| panic!("throttling let a login through"));
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
        let otto = login(base, "otto", &passwords["otto"]).await;
        // A login form posted without its cookie is refused.
        let r = c
            .post(format!("{base}/login"))
            .form(&[
                ("_csrf", "x"),
                ("name", "otto"),
                ("password", passwords["otto"].as_str()),
            ])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // Cookies: HttpOnly, SameSite; the session works until logout, then never again.
        let page = otto.get("/dags").await;
        assert_eq!(status(&page), 200);
        assert!(page.body.contains("hello"), "{}", page.body);
        let a = otto.post("/logout", &[]).await;
        assert_eq!(status(&a), 303);
        assert_eq!(a.location.as_deref(), Some("/login"));
        let again = otto.get("/dags").await;
        assert_eq!(status(&again), 303, "the old session still works");
        // `next` never leaves the site.
        let r = c
            .get(format!("{base}/login?next=//evil.example/x"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let html = r.text().await.unwrap_or_default();
        assert!(html.contains("name=\"next\" value=\"/dags\""), "{html}");
        // A disabled user's sessions and tokens stop working.
        let olga = login(base, "olga", &passwords["olga"]).await;
        let t = token(&d, "olga");
        d.ok(&["users", "disable", "olga", "--as", "admin"]);
        assert_eq!(status(&olga.get("/dags").await), 303);
        let a = api(base, Method::GET, "/api/me", Some(&t), None).await;
        assert_eq!(status(&a), 401, "{}", a.body);
    });
}

#[test]
fn no_secret_renders_on_any_page_or_api_answer() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["scheduler", "--once"]);
    let passwords = users(&d);
    runtime().block_on(async {
        let (_web, base) = start_web(&d, &[]).await;
        // Runs to show: one that succeeds, one that fails.
        let _worker = d.spawn_with(
            "worker",
            &["worker", "--poll-ms", "200"],
            &[("X_SECRET", SECRET), ("X_ID", "client-id")],
        );
        let _sched = d.scheduler("scheduler");
        let store = db.store().await;
        let ok = d.ok(&["runs", "trigger", "hello", "--env", "dev", "--as", "admin"]);
        let bad = d.ok(&["runs", "trigger", "boom", "--env", "dev", "--as", "admin"]);
        for id in [&ok, &bad] {
            let id = Uuid::parse_str(id).unwrap_or_else(|e| panic!("{e}"));
            eventually("the run to finish", Duration::from_secs(30), || async {
                let r = store.get_run(id).await.ok()?;
                r.finished_at.map(|_| ())
            })
            .await;
        }
        let admin = login(&base, "admin", &passwords["admin"]).await;
        let tok = token(&d, "admin");
        let other = login(&base, "vera", &passwords["vera"]).await;
        let made = admin.post("/account/tokens", &[("label", "ci")]).await;
        let shown_once = made
            .body
            .split("id=\"new-token\">")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap_or_else(|| panic!("the new token is shown once: {}", made.body))
            .to_owned();
        let tasks = |id: &str| format!("/runs/{id}/tasks/explode");
        let pages = [
            "/dags".to_owned(),
            "/dags?env=prod".into(),
            "/dags/hello?env=dev".into(),
            "/dags/boom?env=dev".into(),
            format!("/runs/{ok}"),
            format!("/runs/{bad}"),
            tasks(&bad),
            format!("{}/log.txt", tasks(&bad)),
            "/runs".into(),
            "/environments".into(),
            "/checks".into(),
            "/audit".into(),
            "/account".into(),
            "/admin/users".into(),
            "/api/me".into(),
            "/api/dags".into(),
            "/api/dags/hello?env=dev".into(),
            "/api/dags/hello/runs?env=dev".into(),
            format!("/api/runs/{bad}"),
            format!("/api/runs/{bad}/tasks/explode/log"),
            "/api/environments".into(),
            "/api/checks".into(),
            "/api/audit".into(),
            "/api/openapi.json".into(),
            "/metrics".into(),
        ];
        let hashes: Vec<String> = sqlx::query_scalar("select password_hash from app_user")
            .fetch_all(store.pool())
            .await
            .unwrap_or_default();
        for p in &pages {
            let a = admin.get(p).await;
            assert_eq!(status(&a), 200, "{p}: {}", a.body);
            for (what, secret) in [
                ("the MAP client secret", SECRET),
                ("an API token", tok.as_str()),
                ("the token shown once", shown_once.as_str()),
                ("another session's CSRF token", other.csrf.as_str()),
                (
                    "the session cookie",
                    admin.cookie.trim_start_matches("drover_session="),
                ),
                ("a password", passwords["vera"].as_str()),
            ] {
                assert!(!a.body.contains(secret), "{p} shows {what}");
            }
            assert!(!a.body.contains("$argon2"), "{p} shows a password hash");
            for h in &hashes {
                assert!(!a.body.contains(h.as_str()), "{p} shows a password hash");
            }
        }
        // The failed run's page says why, in plain words first.
        let run_page = admin.get(&format!("/runs/{bad}")).await;
        assert!(
            run_page.body.contains("What went wrong"),
            "{}",
            run_page.body
        );
        assert!(
            run_page.body.contains("explode</a></strong> failed"),
            "{}",
            run_page.body
        );
        // The log download is plain text with the failing line.
        let log = admin.get(&format!("{}/log.txt", tasks(&bad))).await;
        assert!(log.body.contains("the MAP said no"), "{}", log.body);
    });
}

#[test]
fn api_errors_have_one_shape_and_the_openapi_document_covers_every_route() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["scheduler", "--once"]);
    let _ = users(&d);
    runtime().block_on(async {
        let (_web, base) = start_web(&d, &[]).await;
        let base = base.as_str();
        let t = token(&d, "otto");
        let missing = Uuid::now_v7();
        for (method, path, body, code) in [
            (Method::GET, format!("/api/runs/{missing}"), None, 404),
            (Method::GET, "/api/runs/not-a-uuid".to_owned(), None, 404),
            (Method::GET, "/api/dags/nope?env=dev".to_owned(), None, 404),
            (Method::GET, "/api/dags?env=nowhere".to_owned(), None, 404),
            (Method::GET, "/api/nothing/here".to_owned(), None, 404),
            (
                Method::GET,
                "/api/notifications?limit=lots".to_owned(),
                None,
                422,
            ),
            (
                Method::POST,
                "/api/dags/hello/runs".to_owned(),
                Some(json!({ "env": "dev" })),
                422,
            ),
            (
                Method::POST,
                "/api/dags/hello/runs".to_owned(),
                Some(json!({ "environment": "dev", "logical_date": "yesterday" })),
                422,
            ),
            (
                Method::POST,
                "/api/dags/hello/unpause".to_owned(),
                Some(json!({ "environment": "dev" })),
                409,
            ),
            (
                Method::POST,
                format!("/api/runs/{missing}/mark"),
                Some(json!({ "state": "failed" })),
                404,
            ),
            (
                Method::POST,
                "/api/environments/prod/promote".to_owned(),
                None,
                403,
            ),
        ] {
            let a = api(base, method.clone(), &path, Some(&t), body).await;
            assert_eq!(status(&a), code, "{method} {path}: {}", a.body);
            let v: serde_json::Value = serde_json::from_str(&a.body)
                .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", a.body));
            assert_eq!(v["error"]["status"], code, "{}", a.body);
            assert!(
                v["error"]["code"].is_string() && v["error"]["message"].is_string(),
                "{}",
                a.body
            );
        }
        // The document lists every route the API serves, and each answers (not 404/405).
        let doc = api(base, Method::GET, "/api/openapi.json", None, None).await;
        let doc: serde_json::Value =
            serde_json::from_str(&doc.body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        assert_eq!(paths.len(), 33, "{:?}", paths.keys().collect::<Vec<_>>());
        let run = d.ok(&["runs", "trigger", "hello", "--env", "dev", "--as", "admin"]);
        for (path, methods) in &paths {
            let concrete = path
                .replace("{dag}", "hello")
                .replace("{env}", "prod")
                .replace("{run}", &run)
                .replace("{task}", "greet")
                .replace("{event}", &uuid::Uuid::now_v7().to_string());
            let concrete = if concrete.ends_with("/diff") {
                format!("{concrete}?from=dev&to=prod")
            } else {
                concrete
            };
            for m in methods
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap_or(Method::GET);
                let a = api(base, method.clone(), &concrete, Some(&t), Some(json!({}))).await;
                assert!(
                    ![404, 405].contains(&status(&a))
                        || a.body.contains("\"code\":\"not_found\"")
                            && !a.body.contains("There is no page"),
                    "{method} {concrete} is documented but not served: {} {}",
                    status(&a),
                    a.body
                );
                let documented: Vec<String> = methods[&m]["responses"]
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default();
                assert!(
                    documented.contains(&status(&a).to_string()),
                    "{method} {concrete} answered {} which is not documented ({documented:?}): {}",
                    status(&a),
                    a.body
                );
            }
        }
        // Health, readiness and metrics.
        assert_eq!(
            status(&api(base, Method::GET, "/healthz", None, None).await),
            200
        );
        assert_eq!(
            status(&api(base, Method::GET, "/readyz", None, None).await),
            200
        );
        let m = api(base, Method::GET, "/metrics", None, None).await;
        assert!(
            m.body
                .contains("drover_runs{environment=\"dev\",state=\"queued\"}"),
            "{}",
            m.body
        );
        assert!(
            m.body
                .contains("# TYPE drover_task_duration_seconds histogram"),
            "{}",
            m.body
        );
    });
}
