//! `triggers:` and `freshness:` as a DAG file writes them and as the model holds them.

use drover_spec::dag::{Batch, DatasetTrigger, Freshness, RunTrigger, WebhookTrigger, load_dag};
use drover_spec::duration::Duration;

#[test]
fn webhook_and_dataset_triggers_and_freshness_load_into_the_model() {
    let src = r#"id: contact_sales
triggers:
  - webhook:
      name: form
      secret: form_hook
      idempotency_key: /fillId
      rows: /leads
      batch: { max_events: 500, max_wait: 10s }
  - dataset: { dag: lead_scoring, task: score }
freshness: { max_age: 26h }
tasks:
  - id: route
    freshness: { max_age: 2h }
    sql: "create table {{ output }} as select payload->>'email' as email from {{ events }} where {{ event.formName }} is not null and {{ trigger.run_id }} is not null"
"#;
    let dag = load_dag("dags/contact_sales.yaml", src).unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(dag.schedule.is_none(), "triggers alone: no schedule");
    let form = WebhookTrigger {
        name: "form".to_owned(),
        secret: "form_hook".to_owned(),
        idempotency_key: Some("/fillId".to_owned()),
        rows: Some("/leads".to_owned()),
        batch: Some(Batch {
            max_events: 500,
            max_wait: Duration::from_secs(10),
        }),
    };
    let scores = DatasetTrigger {
        dag: "lead_scoring".to_owned(),
        task: "score".to_owned(),
    };
    assert_eq!(
        dag.triggers,
        vec![
            RunTrigger::Webhook(form.clone()),
            RunTrigger::Dataset(scores.clone())
        ]
    );
    assert_eq!(dag.webhook("form"), Some(&form));
    assert_eq!(dag.webhook("other"), None);
    assert_eq!(dag.dataset_triggers().collect::<Vec<_>>(), vec![&scores]);
    assert_eq!(
        dag.freshness,
        Some(Freshness {
            max_age: Duration::from_secs(26 * 3600)
        })
    );
    assert_eq!(
        dag.task("route").and_then(|t| t.freshness),
        Some(Freshness {
            max_age: Duration::from_secs(7200)
        })
    );
    assert_eq!(
        dag.triggers[0].describe(),
        "webhook `form` (batches of up to 500 events, or 10s)"
    );
}

#[test]
fn a_dag_without_triggers_has_none() {
    let dag = load_dag("d.yaml", "id: d\ntasks:\n  - id: a\n    noop: {}\n")
        .unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(dag.triggers.is_empty());
    assert_eq!(dag.freshness, None);
}
