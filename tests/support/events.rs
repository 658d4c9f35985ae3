//! A DAG with webhook triggers in dev and prod, and events accepted as the webhook endpoint
//! accepts them, for the event tests.
#![allow(dead_code, unreachable_pub)]

use chrono::Utc;
use drover_store::{Accepted, BatchRule, EventKind, NewEvent, NewRun, RunType, Store};
use serde_json::{Value, json};

use super::Workspace;

pub const CONTACT: &str = r#"id: contact
description: Route Contact Sales form fills
timezone: America/New_York
triggers:
  - webhook: { name: form, secret: form_hook, idempotency_key: /fillId }
  - webhook: { name: flood, secret: form_hook, batch: { max_events: 3, max_wait: 1h } }
tasks:
  - id: route
    retries: 0
    command: { argv: [echo, "routing {{ run_id }}"] }
"#;

pub const GONE: &str = "id: gone\ntriggers:\n  - webhook: { name: form, secret: form_hook }\ntasks:\n  - id: a\n    noop: {}\n";

/// dev (rows visible to everyone) and prod (to operators and admins), both holding the
/// `form_hook` secret; DAGs `contact` and `gone`.
pub fn workspace() -> Workspace {
    let ws = Workspace::new();
    let map = "map:\n  kind: marketo\n  base_url: http://127.0.0.1:9\n  client_id: { env: X_ID }\n  client_secret: { env: X_SECRET }\nsecrets:\n  form_hook: { env: FORM_HOOK }\n";
    std::fs::write(
        ws.environments().join("dev.yaml"),
        format!("name: dev\norder: 1\nbranch: main\n{map}"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        ws.environments().join("prod.yaml"),
        format!("name: prod\norder: 2\nrows_visible_to: operator\n{map}"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    ws.dag("contact", CONTACT);
    ws.dag("gone", GONE);
    ws
}

/// Accept an event of `dag`'s `trigger` in `env`, as the webhook endpoint does.
pub async fn accept(
    store: &Store,
    env: &str,
    dag: &str,
    trigger: &str,
    payload: Value,
    key: Option<&str>,
    batch: Option<BatchRule>,
) -> Accepted {
    let version = store
        .dag_env(dag, env)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .version_id;
    let now = Utc::now();
    store
        .accept_event(&NewEvent {
            kind: EventKind::Webhook,
            trigger: trigger.to_owned(),
            source: "10.0.0.4".to_owned(),
            idempotency_key: key.map(str::to_owned),
            payload,
            replay_of: None,
            run: NewRun {
                dag_id: dag.to_owned(),
                environment: env.to_owned(),
                version_id: version,
                run_type: RunType::Event,
                logical_date: now,
                interval_start: now,
                interval_end: now,
                params: json!({}),
                triggered_by: Some(format!("webhook {trigger}")),
                deadline_at: None,
                preview: false,
            },
            batch,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}
