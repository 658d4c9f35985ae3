//! Events in words: what started a run ("Started by a form event from 10.0.0.4 at 14:02:01
//! New York", "Batch of 37 form events (first 14:02:01, last 14:02:10 New York)", "Replay of
//! event …4f1c2a9b by ada"), and an event's id as people can tell them apart.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use drover_store::RunEvents;
use uuid::Uuid;

use super::local_time::{city, moment};

/// The end of an id, which tells events apart (their ids start with the time they were
/// made, so the start is alike for events of the same minute): "…4f1c2a9b".
pub(crate) fn short_id(id: &Uuid) -> String {
    let text = id.simple().to_string();
    format!("…{}", &text[text.len().saturating_sub(8)..])
}

/// A trigger as people say it: a webhook's name, or "lead_scoring.score" for a dataset.
fn trigger_words(trigger: &str) -> &str {
    trigger.strip_prefix("dataset:").unwrap_or(trigger)
}

/// What started a run, with the events to link to.
#[derive(Debug, Clone)]
pub(crate) struct StartedBy {
    pub(crate) text: String,
    /// The run's first event.
    pub(crate) first: Uuid,
    pub(crate) count: i64,
    /// The event a replay run's first event replays.
    pub(crate) original: Option<Uuid>,
    /// The run whose dataset started it, for a run started by a dataset.
    pub(crate) producer: Option<Uuid>,
}

/// The sentence for a run started by `events`; `actor` is who triggered it (the replayer).
pub(crate) fn started_by(
    now: DateTime<Utc>,
    events: &RunEvents,
    actor: Option<&str>,
    tz: Tz,
) -> StartedBy {
    let e = &events.first;
    let place = city(tz);
    let first = moment(now, e.received_at, tz);
    let last = moment(now, events.last_received, tz);
    let n = events.count;
    let what = trigger_words(&e.trigger);
    let text = match (e.kind.as_str(), n) {
        ("replay", 1) => format!(
            "Replay of event {} by {}, at {first} {place}",
            e.replay_of
                .as_ref()
                .map_or_else(|| "(gone)".to_owned(), short_id),
            actor.unwrap_or("someone")
        ),
        ("replay", _) => format!(
            "Replay of {n} {what} events by {}, together as they first ran, at {first} {place}",
            actor.unwrap_or("someone")
        ),
        ("dataset", 1) => dataset_words(e, what, &first, &place),
        (_, 1) => format!(
            "Started by a {what} event from {} at {first} {place}",
            e.source
        ),
        ("dataset", _) => {
            format!("Batch of {n} {what} dataset events (first {first}, last {last} {place})")
        }
        _ => format!("Batch of {n} {what} events (first {first}, last {last} {place})"),
    };
    StartedBy {
        text,
        first: e.id,
        count: n,
        original: e.replay_of,
        producer: producing_run(e),
    }
}

/// "Started by lead_scoring.score in run …4f1c2a9b, which staged 1,204 rows, at 14:02:01
/// New York" (the producing run from the event; its source's words when it has none).
fn dataset_words(e: &drover_store::EventRow, what: &str, first: &str, place: &str) -> String {
    let run = e
        .payload
        .get("run_id")
        .and_then(|r| r.as_str())
        .and_then(|r| Uuid::parse_str(r).ok());
    let rows = e
        .payload
        .get("rows")
        .and_then(serde_json::Value::as_i64)
        .map(|n| {
            format!(
                ", which staged {} row{}",
                drover_spec::numbers::thousands(n),
                if n == 1 { "" } else { "s" }
            )
        })
        .unwrap_or_default();
    match run {
        Some(run) => format!(
            "Started by {what} in run {}{rows}, at {first} {place}",
            short_id(&run)
        ),
        None => format!(
            "Started when {what} produced its dataset ({}), at {first} {place}",
            e.source
        ),
    }
}

/// The producing run of a run started by a dataset event, to link to.
pub(crate) fn producing_run(e: &drover_store::EventRow) -> Option<Uuid> {
    (e.trigger.starts_with("dataset:"))
        .then(|| e.payload.get("run_id").and_then(|r| r.as_str()))
        .flatten()
        .and_then(|r| Uuid::parse_str(r).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    }

    fn events(kind: &str, trigger: &str, source: &str, n: i64) -> RunEvents {
        let id = Uuid::parse_str("0193ab12-0000-7000-8000-00004f1c2a9b").unwrap_or_default();
        RunEvents {
            count: n,
            first: drover_store::EventRow {
                id,
                environment: "prod".to_owned(),
                dag_id: "contact_sales".to_owned(),
                trigger: trigger.to_owned(),
                kind: kind.to_owned(),
                received_at: at("2026-12-02T19:02:01Z"),
                source: source.to_owned(),
                idempotency_key: None,
                payload: serde_json::Value::Null,
                run_id: None,
                replay_of: (kind == "replay").then_some(id),
                run_state: None,
            },
            last_received: at("2026-12-02T19:02:10Z"),
        }
    }

    #[test]
    fn what_started_a_run_in_words() {
        let now = at("2026-12-02T20:00:00Z");
        let ny = Tz::America__New_York;
        let say = |e: &RunEvents, who: Option<&str>| started_by(now, e, who, ny).text;
        assert_eq!(
            say(&events("webhook", "form", "10.0.0.4", 1), None),
            "Started by a form event from 10.0.0.4 at 14:02:01 New York"
        );
        assert_eq!(
            say(&events("webhook", "form", "10.0.0.4", 37), None),
            "Batch of 37 form events (first 14:02:01, last 14:02:10 New York)"
        );
        assert_eq!(
            say(
                &events("replay", "form", "replay by ada of event x", 1),
                Some("ada")
            ),
            "Replay of event …4f1c2a9b by ada, at 14:02:01 New York"
        );
        assert_eq!(
            say(
                &events("replay", "form", "replay by ada of event x", 3),
                Some("ada")
            ),
            "Replay of 3 form events by ada, together as they first ran, at 14:02:01 New York"
        );
        assert_eq!(
            say(
                &events("dataset", "dataset:lead_scoring.score", "run 0193", 1),
                None
            ),
            "Started when lead_scoring.score produced its dataset (run 0193), at 14:02:01 New York"
        );
        let mut produced = events(
            "dataset",
            "dataset:lead_scoring.score",
            "run x of lead_scoring",
            1,
        );
        produced.first.payload = serde_json::json!({
            "dag": "lead_scoring", "task": "score", "rows": 1204,
            "run_id": "0193ab12-0000-7000-8000-0000a1b2c3d4",
        });
        assert_eq!(
            say(&produced, None),
            "Started by lead_scoring.score in run …a1b2c3d4, which staged 1,204 rows, at 14:02:01 New York"
        );
        assert_eq!(
            producing_run(&produced.first)
                .map(|r| r.to_string())
                .as_deref(),
            Some("0193ab12-0000-7000-8000-0000a1b2c3d4")
        );
        let s = started_by(now, &events("replay", "form", "r", 1), Some("ada"), ny);
        assert_eq!((s.count, s.original.is_some()), (1, true));
    }
}
