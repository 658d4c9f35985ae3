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
        ("dataset", 1) => format!(
            "Started when {what} produced its dataset ({}), at {first} {place}",
            e.source
        ),
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
    }
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
        let s = started_by(now, &events("replay", "form", "r", 1), Some("ada"), ny);
        assert_eq!((s.count, s.original.is_some()), (1, true));
    }
}
