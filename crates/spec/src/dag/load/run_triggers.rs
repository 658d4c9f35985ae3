//! Checks of `triggers:` and `freshness:`.

use std::collections::HashMap;

use super::{Checker, IDENTIFIER_RULE, valid_identifier};
use crate::dag::run_triggers::{
    MAX_BATCH_EVENTS, MAX_BATCH_WAIT, RawRunTrigger, RawSecretName, RawWebhook, is_json_pointer,
};
use crate::dag::{DatasetTrigger, Freshness, RunTrigger, WebhookTrigger};

/// The triggers of DAG `dag_id`, each problem reported where it is.
pub(super) fn check(c: &mut Checker<'_>, dag_id: &str, raw: &[RawRunTrigger]) -> Vec<RunTrigger> {
    let mut out = Vec::with_capacity(raw.len());
    let mut webhooks: HashMap<&str, usize> = HashMap::new();
    let mut datasets: HashMap<&DatasetTrigger, usize> = HashMap::new();
    for (i, t) in raw.iter().enumerate() {
        let path = format!("triggers[{i}]");
        match (&t.webhook, &t.dataset) {
            (Some(w), None) => {
                if let Some(&first) = webhooks.get(w.name.as_str()) {
                    let line = c.line_of(&format!("triggers[{first}]"));
                    c.at_value(
                        &format!("{path}.webhook.name"),
                        format!(
                            "webhook `{}` is declared twice (first at line {line})",
                            w.name
                        ),
                    );
                } else {
                    webhooks.insert(&w.name, i);
                }
                if let Some(w) = webhook(c, &format!("{path}.webhook"), w) {
                    out.push(RunTrigger::Webhook(w));
                }
            }
            (None, Some(d)) => {
                let at = format!("{path}.dataset");
                let before = c.diags.len();
                if !valid_identifier(&d.dag) {
                    c.at_value(
                        &format!("{at}.dag"),
                        format!("invalid DAG id `{}`: ids must {IDENTIFIER_RULE}", d.dag),
                    );
                }
                if !valid_identifier(&d.task) {
                    c.at_value(
                        &format!("{at}.task"),
                        format!("invalid task id `{}`: ids must {IDENTIFIER_RULE}", d.task),
                    );
                }
                if d.dag == dag_id {
                    c.at_value(
                        &format!("{at}.dag"),
                        format!(
                            "a DAG cannot be triggered by its own dataset (`{dag_id}` would start itself for ever): use `depends_on` between its tasks"
                        ),
                    );
                }
                if let Some(&first) = datasets.get(d) {
                    let line = c.line_of(&format!("triggers[{first}]"));
                    c.at_key(
                        &at,
                        format!(
                            "the dataset of {}.{} is a trigger twice (first at line {line})",
                            d.dag, d.task
                        ),
                    );
                } else {
                    datasets.insert(d, i);
                }
                if c.diags.len() == before {
                    out.push(RunTrigger::Dataset(d.clone()));
                }
            }
            (Some(_), Some(_)) => c.at_key(
                &path,
                "a trigger is either `webhook:` or `dataset:`, not both: make them two entries"
                    .to_owned(),
            ),
            (None, None) => c.at_key(
                &path,
                "a trigger needs `webhook: { name, secret }` or `dataset: { dag, task }`"
                    .to_owned(),
            ),
        }
    }
    out
}

fn webhook(c: &mut Checker<'_>, at: &str, w: &RawWebhook) -> Option<WebhookTrigger> {
    let before = c.diags.len();
    if !valid_identifier(&w.name) {
        c.at_value(
            &format!("{at}.name"),
            format!(
                "invalid webhook name `{}`: names must {IDENTIFIER_RULE}",
                w.name
            ),
        );
    }
    let secret = match &w.secret {
        RawSecretName::Name(name) if crate::environment::is_secret_name(name) => Some(name.clone()),
        RawSecretName::Name(name) => {
            c.at_value(
                &format!("{at}.secret"),
                format!(
                    "invalid secret name `{name}`: use lower-case letters, digits and `_`, starting with a letter"
                ),
            );
            None
        }
        RawSecretName::Reference(_) => {
            c.at_value(
                &format!("{at}.secret"),
                "`secret` is the name of a secret of the environment (e.g. `secret: form_hook`), not where its value is: the environment's file says that, under `secrets:` (`form_hook: { env: FORM_HOOK_SECRET }`), so each environment has its own".to_owned(),
            );
            None
        }
    };
    for (field, value) in [("idempotency_key", &w.idempotency_key), ("rows", &w.rows)] {
        if let Some(p) = value
            && !is_json_pointer(p)
        {
            c.at_value(
                &format!("{at}.{field}"),
                format!(
                    "`{field}` must be a JSON pointer into the body, such as `/fillId` or `/lead/email` (RFC 6901: `/` before each key, `~1` for a `/` inside one, `~0` for `~`), not `{p}`"
                ),
            );
        }
    }
    if let Some(b) = &w.batch {
        if b.max_events == 0 || b.max_events > MAX_BATCH_EVENTS {
            c.at_value(
                &format!("{at}.batch.max_events"),
                format!("`max_events` must be from 1 to {MAX_BATCH_EVENTS}"),
            );
        }
        if b.max_wait.as_millis() == 0 || b.max_wait > MAX_BATCH_WAIT {
            c.at_value(
                &format!("{at}.batch.max_wait"),
                format!("`max_wait` must be longer than 0s and at most {MAX_BATCH_WAIT}"),
            );
        }
    }
    if c.diags.len() > before {
        return None;
    }
    Some(WebhookTrigger {
        name: w.name.clone(),
        secret: secret?,
        idempotency_key: w.idempotency_key.clone(),
        rows: w.rows.clone(),
        batch: w.batch,
    })
}

pub(super) fn check_freshness(c: &mut Checker<'_>, at: &str, f: &Freshness) {
    if f.max_age.as_millis() < 60_000 {
        c.at_value(
            &format!("{at}.max_age"),
            "`max_age` must be at least 1m".to_owned(),
        );
    }
}
