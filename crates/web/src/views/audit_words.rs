//! An audit event in words: its action as a phrase and a one-line summary of its details
//! (the JSON itself stays one click away).

use serde_json::Value;

/// "triggered a run", "promoted the environment", … (the action's name when unknown).
pub(crate) fn action_words(action: &str) -> String {
    let known = match action {
        "run.trigger" => "triggered a run",
        "run.mark" => "marked a run",
        "task.clear" => "cleared tasks",
        "dag.pause" => "paused a DAG",
        "dag.unpause" => "unpaused a DAG",
        "dag.backfill" => "backfilled a DAG",
        "return.revert.started" => "started reverting a return",
        "return.revert" => "reverted a return",
        "return.approval_requested" => "asked for approval of a return's writes",
        "return.approved" => "approved a return's writes",
        "return.rejected" => "rejected a return's writes",
        "return.approval_expired" => "let a return's approval expire",
        "data.stale" => "found data stale",
        "data.fresh" => "ended an episode of stale data",
        "environment.promote" => "promoted",
        "environment.rollback" => "rolled back",
        "environment.promotion_requested" => "asked for a promotion",
        "environment.promotion_approved" => "approved a promotion",
        "environment.promotion_rejected" => "rejected a promotion",
        "maintenance_on" => "started maintenance",
        "maintenance_stop_running" => "stopped running tasks for maintenance",
        "user.add" => "added a user",
        "user.role" => "changed a user's role",
        "user.disable" => "disabled a user",
        "user.enable" => "enabled a user",
        "user.login" => "logged in",
        "user.logout" => "logged out",
        "user.password" => "changed a password",
        "user.token.create" => "created an API token",
        "user.token.revoke" => "revoked an API token",
        other => return other.replace(['.', '_'], " "),
    };
    known.to_owned()
}

/// Longest a value may be in the summary.
const VALUE_CHARS: usize = 60;
/// Most fields named in the summary.
const FIELDS: usize = 4;

/// "state: failed · from: running · tasks: a, b": the first few fields of `details`, each
/// value cut short; empty for no details.
pub(crate) fn summary(details: &Value) -> String {
    let Some(fields) = details.as_object() else {
        return short(&text(details));
    };
    let said = |v: &Value| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty());
    let mut parts: Vec<String> = fields
        .iter()
        .filter(|(_, v)| said(v))
        .take(FIELDS)
        .map(|(k, v)| format!("{}: {}", k.replace('_', " "), short(&text(v))))
        .collect();
    let more = fields.iter().filter(|(_, v)| said(v)).count();
    if more > parts.len() {
        parts.push(format!("{} more", more - parts.len()));
    }
    parts.join(" · ")
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            super::short_sha(s).to_owned()
        }
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn short(s: &str) -> String {
    if s.chars().count() <= VALUE_CHARS {
        return s.to_owned();
    }
    let cut: String = s.chars().take(VALUE_CHARS - 1).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_read_as_words() {
        assert_eq!(action_words("run.mark"), "marked a run");
        assert_eq!(action_words("something.new_thing"), "something new thing");
        assert_eq!(
            summary(&json!({"state": "failed", "from": "running", "tasks": ["a", "b"]})),
            "from: running · state: failed · tasks: a, b"
        );
        assert_eq!(summary(&json!({})), "");
        assert_eq!(
            summary(
                &json!({"to": "0123456789abcdef0123456789abcdef01234567", "note": null, "changed_dags": []})
            ),
            "to: 0123456789"
        );
        let long = summary(&json!({"message": "x".repeat(200)}));
        assert_eq!(long.chars().count(), "message: ".len() + 60, "{long}");
        assert_eq!(
            summary(&json!({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6})),
            "a: 1 · b: 2 · c: 3 · d: 4 · 2 more"
        );
    }
}
