//! Events as data: everyone lists and reads a DAG's events (what came, from where, which run
//! it started and how that went); payloads, which hold personal data (a form fill is a
//! person's name and email), and idempotency keys (often taken from the payload) only those
//! the environment's `rows_visible_to` allows; operators and admins replay them, one by one
//! or for a time range.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use drover_spec::environment::{Environment, Role};
use drover_store::{EventRow, ReplayBy, Replayed};
use uuid::Uuid;

use super::{Action, Actor, OpError, Operations};

/// The most events one listing gives.
pub const MAX_EVENTS_LISTED: i64 = 1000;

/// Which events to list.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub dag_id: String,
    pub environment: String,
    /// Received at or after.
    pub from: Option<DateTime<Utc>>,
    /// Received before.
    pub to: Option<DateTime<Utc>>,
    /// Older than this event (the next page).
    pub before: Option<Uuid>,
    /// 1 to [`MAX_EVENTS_LISTED`].
    pub limit: i64,
}

/// Events as one actor may see them.
#[derive(Debug, Clone)]
pub struct EventList {
    /// Newest first, without payloads; keys are null when `hidden`.
    pub events: Vec<EventRow>,
    /// Why payloads and keys are not shown, if they are not.
    pub hidden: Option<String>,
}

/// One event as one actor may see it.
#[derive(Debug, Clone)]
pub struct EventView {
    /// Its payload and key are null when `hidden`.
    pub event: EventRow,
    pub hidden: Option<String>,
    /// The events that replay it, oldest first.
    pub replays: Vec<Uuid>,
}

/// Why `actor` may not see the payloads of `env`'s events, if they may not.
pub fn payload_hidden(actor: &Actor, env: &Environment) -> Option<String> {
    if actor.sees_rows(env) {
        return None;
    }
    let who = match env.rows_visible_to {
        Role::Viewer => "everyone",
        Role::Operator => "operators and admins",
        Role::Admin => "admins",
    };
    Some(format!(
        "Payloads and keys of {} events are visible to {who} (they may hold personal data); you see when each came, from where, and its run.",
        env.name.to_uppercase()
    ))
}

fn withhold(mut e: EventRow) -> EventRow {
    e.payload = serde_json::Value::Null;
    e.idempotency_key = None;
    e
}

impl Operations {
    /// A DAG's events in an environment, newest first, as `q` asks. A listing carries no
    /// payloads ([`Operations::event`] does).
    pub async fn events(&self, actor: &Actor, q: &EventQuery) -> Result<EventList, OpError> {
        let (dag, environment) = (q.dag_id.as_str(), q.environment.as_str());
        let env = self.environment(environment).await?;
        actor
            .check(Action::View, Some(&env))
            .map_err(OpError::Forbidden)?;
        let events = self
            .store
            .dag_events_page(
                dag,
                environment,
                q.from,
                q.to,
                q.before,
                q.limit.clamp(1, MAX_EVENTS_LISTED),
            )
            .await?;
        if events.is_empty() && self.store.dag_env(dag, environment).await.is_err() {
            return Err(OpError::NotFound(format!(
                "no DAG `{dag}` in environment `{environment}`, and no events of one"
            )));
        }
        let hidden = payload_hidden(actor, &env);
        let events = if hidden.is_some() {
            events.into_iter().map(withhold).collect()
        } else {
            events
        };
        Ok(EventList { events, hidden })
    }

    /// One event, with the events that replay it.
    pub async fn event(&self, actor: &Actor, id: Uuid) -> Result<EventView, OpError> {
        let event = self.store.event(id).await?;
        let env = self.environment(&event.environment).await?;
        actor
            .check(Action::View, Some(&env))
            .map_err(OpError::Forbidden)?;
        let hidden = payload_hidden(actor, &env);
        let replays = self.store.replays_of(id).await?;
        Ok(EventView {
            event: if hidden.is_some() {
                withhold(event)
            } else {
                event
            },
            hidden,
            replays,
        })
    }

    /// The deadline the DAG gives a run made now, if it has one (none when the DAG is gone:
    /// the replay then refuses with its own words).
    async fn replay_deadline(
        &self,
        dag: &str,
        environment: &str,
    ) -> Result<Option<DateTime<Utc>>, OpError> {
        let Ok(de) = self.store.dag_env(dag, environment).await else {
            return Ok(None);
        };
        let spec = self.dags.get(de.version_id).await?;
        Ok(spec.deadline.map(|d| d.due(Utc::now(), spec.timezone)))
    }

    /// Replay one event in a new run of type `replay` (a replay too); audited.
    pub async fn replay_event(&self, actor: &Actor, id: Uuid) -> Result<Replayed, OpError> {
        let event = self.store.event(id).await?;
        self.allowed(actor, Action::Replay, &event.environment)
            .await?;
        let deadline_at = self
            .replay_deadline(&event.dag_id, &event.environment)
            .await?;
        Ok(self
            .store
            .replay_event(
                id,
                ReplayBy {
                    actor: &actor.name,
                    deadline_at,
                },
            )
            .await?)
    }

    /// Replay the events `dag` received in `environment` in `[from, to)` (not earlier
    /// replays), events that shared a run sharing a replay run; audited.
    pub async fn replay_range(
        &self,
        actor: &Actor,
        dag: &str,
        environment: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Replayed, OpError> {
        self.allowed(actor, Action::Replay, environment).await?;
        let deadline_at = self.replay_deadline(dag, environment).await?;
        Ok(self
            .store
            .replay_range(
                dag,
                environment,
                from,
                to,
                ReplayBy {
                    actor: &actor.name,
                    deadline_at,
                },
            )
            .await?)
    }
}

/// A moment as people give one for a range: RFC 3339 (`2026-12-02T14:00:00Z`), a local time
/// in `tz` (`2026-12-02 14:00`, `2026-12-02T14:00`, as a browser's date-time field sends it),
/// a date (midnight in `tz`), or a duration ago (`90m`, `2h`, `1d`).
pub fn parse_moment(text: &str, tz: Tz, now: DateTime<Utc>) -> Result<DateTime<Utc>, OpError> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(ago) = text.parse::<drover_spec::duration::Duration>() {
        let ms = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
        return now
            .checked_sub_signed(chrono::Duration::milliseconds(ms))
            .ok_or_else(|| OpError::Invalid(format!("`{text}` ago is before any date")));
    }
    let local = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or_else(|| {
            OpError::Invalid(format!(
                "`{text}` is not a time: give RFC 3339 (2026-12-02T14:00:00Z), a local time (2026-12-02 14:00, in {}), a date, or a duration ago (2h)",
                tz.name()
            ))
        })?;
    // A time skipped by a daylight-saving change is read as the first moment after the gap.
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| OpError::Invalid(format!("`{text}` does not exist in {}", tz.name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    }

    #[test]
    fn moments_read_as_rfc3339_local_times_dates_or_durations_ago() {
        let ny: Tz = "America/New_York".parse().unwrap_or(Tz::UTC);
        let now = at("2026-12-02T19:00:00Z");
        let read = |t: &str| parse_moment(t, ny, now).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(read("2026-12-02T14:00:00Z"), at("2026-12-02T14:00:00Z"));
        assert_eq!(read("2026-12-02 14:00"), at("2026-12-02T19:00:00Z"));
        assert_eq!(read("2026-12-02T14:00"), at("2026-12-02T19:00:00Z"));
        assert_eq!(read(" 2026-12-02 14:00:30 "), at("2026-12-02T19:00:30Z"));
        assert_eq!(read("2026-12-02"), at("2026-12-02T05:00:00Z"));
        assert_eq!(read("2h"), at("2026-12-02T17:00:00Z"));
        assert_eq!(read("1h30m"), at("2026-12-02T17:30:00Z"));
        // 02:30 on the spring-forward day does not exist in New York: the gap's end.
        assert_eq!(read("2026-03-08 02:30"), at("2026-03-08T07:30:00Z"));
        for bad in ["yesterday", "2026-13-01", "14:00", ""] {
            match parse_moment(bad, ny, now) {
                Err(OpError::Invalid(m)) => assert!(m.contains("is not a time"), "{bad}: {m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn payloads_show_to_the_environment_role_named_and_above() {
        let mut prod: Environment = serde_json::from_value(serde_json::json!({
            "name": "prod", "order": 1,
            "map": {"kind": "marketo", "base_url": "http://127.0.0.1:1",
                    "client_id": {"env": "X"}, "client_secret": {"env": "Y"}}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        prod.rows_visible_to = Role::Operator;
        let vic = Actor::with_role("vic", Role::Viewer);
        let otto = Actor::with_role("otto", Role::Operator);
        assert_eq!(
            payload_hidden(&vic, &prod).as_deref(),
            Some(
                "Payloads and keys of PROD events are visible to operators and admins (they may hold personal data); you see when each came, from where, and its run."
            )
        );
        assert!(payload_hidden(&otto, &prod).is_none());
        prod.rows_visible_to = Role::Viewer;
        assert!(payload_hidden(&vic, &prod).is_none());
    }
}
