//! Notifications: each pass records the recent events (and episodes of stale data) every
//! environment's channels want, then sends what is due to its webhook as Slack-compatible
//! JSON, or as an email over SMTP. The same event of the same DAG goes to a channel at most
//! once per `dedup`, and at most `max_per_hour` a channel; the rest
//! are recorded as suppressed with the reason. A failed send is retried with backoff (5
//! tries), then recorded as failed with the error. Any number of schedulers may do this: an
//! event is recorded once, and each notification is claimed by one sender.

use std::time::Duration;

use chrono::Utc;
use drover_map::Redactor;
use drover_spec::environment::{EmailTarget, Environment, NotificationChannel, SecretRef};
use drover_store::{NotificationRow, StaleEpisode, Store};
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::EngineError;

/// Tries before a notification is given up.
const MAX_ATTEMPTS: i32 = 5;

#[derive(Debug, Clone)]
pub struct Notifier {
    store: Store,
    dags: crate::DagCache,
    client: reqwest::Client,
    /// The web UI's address, for links in messages.
    base_url: Option<String>,
}

impl Notifier {
    pub fn new(store: Store, base_url: Option<String>) -> Result<Self, EngineError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| EngineError::Invalid(format!("cannot build the webhook client: {e}")))?;
        Ok(Self {
            dags: crate::DagCache::new(store.clone()),
            store,
            client,
            base_url,
        })
    }

    /// Record new events and send what is due.
    pub async fn pass(&self) -> Result<(), EngineError> {
        let environments: Vec<Environment> = self
            .store
            .environments()
            .await?
            .into_iter()
            .filter_map(|e| serde_json::from_value(e.spec).ok())
            .collect();
        for env in &environments {
            for channel in &env.notifications {
                let events: Vec<&str> = channel.on.iter().map(|e| e.as_str()).collect();
                self.store
                    .queue_notifications(&env.name, &channel.name, &events, &channel.dags)
                    .await?;
            }
        }
        for n in self.store.claim_notifications(50).await? {
            let channel = environments
                .iter()
                .find(|e| e.name == n.environment)
                .and_then(|e| e.notifications.iter().find(|c| c.name == n.channel));
            let Some(channel) = channel else {
                self.store
                    .finish_notification(
                        &n,
                        "failed",
                        Some("the channel is no longer in the environment file"),
                        None,
                    )
                    .await?;
                continue;
            };
            self.deliver(&n, channel).await?;
        }
        Ok(())
    }

    async fn deliver(
        &self,
        n: &NotificationRow,
        channel: &NotificationChannel,
    ) -> Result<(), EngineError> {
        let now = Utc::now();
        // Stale data refreshed before it was told: nothing to tell any more.
        if let Some(id) = n.stale_episode
            && let Some(e) = self.store.stale_episode(id).await?
            && e.cleared_at.is_some()
        {
            self.store
                .finish_notification(
                    n,
                    "suppressed",
                    Some("fresh again before it was sent: the data was refreshed, or is no longer asked for"),
                    None,
                )
                .await?;
            return Ok(());
        }
        let dedup = chrono::Duration::milliseconds(
            i64::try_from(channel.dedup.as_millis()).unwrap_or(i64::MAX),
        );
        if let Some(earlier) = self.store.last_sent_like(n, now - dedup).await? {
            let why = format!(
                "duplicate: the same event of this DAG was sent as #{earlier} within {}",
                channel.dedup
            );
            self.store
                .finish_notification(n, "suppressed", Some(&why), None)
                .await?;
            return Ok(());
        }
        let sent = self
            .store
            .sent_count(&n.environment, &n.channel, now - chrono::Duration::hours(1))
            .await?;
        if sent >= i64::from(channel.max_per_hour) {
            let why = format!(
                "rate limit: {} sent to this channel in the last hour",
                channel.max_per_hour
            );
            self.store
                .finish_notification(n, "suppressed", Some(&why), None)
                .await?;
            return Ok(());
        }
        let (outcome, redactor) = match (&channel.webhook, &channel.email) {
            (Some(hook), _) => match secret(hook, "webhook URL") {
                Ok(url) => (self.post(&url, n).await, url_redactor(&url)),
                Err(e) => (Err(e), Redactor::default()),
            },
            (None, Some(email)) => match secret(&email.smtp, "SMTP server URL") {
                Ok(url) => (self.mail(&url, email, n).await, url_redactor(&url)),
                Err(e) => (Err(e), Redactor::default()),
            },
            (None, None) => (
                Err("the channel has neither a webhook nor an email".to_owned()),
                Redactor::default(),
            ),
        };
        // A server's answer may echo the URL's secret parts (an SMTP 535 quoting AUTH, a
        // proxy quoting the path), in any encoding: none of it is stored or logged.
        let outcome = outcome.map_err(|e| redactor.redact(&e));
        match outcome {
            Ok(()) => {
                self.store
                    .finish_notification(n, "sent", None, None)
                    .await?;
                tracing::info!(channel = %n.channel, event = %n.event, dag = %n.dag_id, "notification sent");
            }
            Err(e) if n.attempts >= MAX_ATTEMPTS => {
                tracing::warn!(channel = %n.channel, error = %e, "notification given up");
                self.store
                    .finish_notification(
                        n,
                        "failed",
                        Some(&format!("after {} tries: {e}", n.attempts)),
                        None,
                    )
                    .await?;
            }
            Err(e) => {
                // 5 s, 20 s, 80 s, 320 s.
                let wait = 5 * 4_i64.pow(u32::try_from(n.attempts - 1).unwrap_or(0));
                tracing::warn!(channel = %n.channel, error = %e, retry_in_secs = wait, "notification not delivered; retrying");
                self.store
                    .finish_notification(
                        n,
                        "pending",
                        Some(&e),
                        Some(now + chrono::Duration::seconds(wait)),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// What the notification says beyond its event, as things stand now: the run's sentence
    /// and warnings, the stale episode's facts, or the episodes a recovered run ended. What
    /// cannot be read is left out (the notification still goes out).
    async fn told(&self, n: &NotificationRow) -> Told {
        let mut told = Told {
            story: self.story(n).await,
            ..Told::default()
        };
        if let Some(id) = n.stale_episode
            && let Ok(Some(e)) = self.store.stale_episode(id).await
        {
            let age = (Utc::now() - e.counted_from).num_seconds();
            let sentence = crate::freshness::stale_sentence(
                &e.dag_id,
                &e.task_id,
                &e.environment,
                e.last_refreshed_at.is_some(),
                age,
                e.max_age_secs,
            );
            told.stale = Some((e, age, sentence));
        }
        if n.event == "recovery"
            && let Some(run) = n.run_id
        {
            told.fresh_again = self
                .store
                .ended_by_run(run)
                .await
                .unwrap_or_default()
                .iter()
                .map(crate::freshness::fresh_again_sentence)
                .collect();
        }
        told
    }

    /// The run's sentence ("290 leads read from Marketo · …") and its warnings, as the run
    /// stands now; none when it cannot be read, or the notification is about no run.
    async fn story(&self, n: &NotificationRow) -> Option<(String, Vec<String>)> {
        let run = self.store.get_run(n.run_id?).await.ok()?;
        let envs = crate::promotion::environments(&self.store).await.ok()?;
        let mut stories =
            crate::story::run_stories(&self.store, &self.dags, &envs, std::slice::from_ref(&run))
                .await
                .ok()?;
        let story = stories.remove(&run.id)?;
        Some((
            story.sentence,
            story.problems.into_iter().map(|p| p.message).collect(),
        ))
    }

    /// One plain-text email: the headline as subject, the facts and the run's link as body.
    async fn mail(&self, url: &str, to: &EmailTarget, n: &NotificationRow) -> Result<(), String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("the SMTP server URL is not usable: {e}"))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        let told = self.told(n).await;
        let text = payload(n, self.base_url.as_deref(), &told);
        let headline = plain_headline(n, &told);
        let mut message = Message::builder()
            .from(
                to.from
                    .parse()
                    .map_err(|e| format!("`from` {}: {e}", to.from))?,
            )
            .subject(format!("[Drover] {headline}"));
        for address in &to.to {
            message = message.to(address
                .parse()
                .map_err(|e| format!("`to` {address}: {e}"))?);
        }
        let link = match (self.base_url.as_deref(), n.run_id) {
            (Some(b), Some(run)) => format!("{}/runs/{run}", b.trim_end_matches('/')),
            (Some(b), None) => format!(
                "{}/dags/{}?env={}",
                b.trim_end_matches('/'),
                n.dag_id,
                n.environment
            ),
            (None, Some(run)) => format!("run {run}"),
            (None, None) => format!("DAG {} in {}", n.dag_id, n.environment),
        };
        let facts = &text["drover"];
        let mut said = told
            .story
            .as_ref()
            .map(|(sentence, warnings)| {
                let mut t = format!("{sentence}\n");
                for w in warnings {
                    t.push_str(&format!("Warning: {w}\n"));
                }
                t
            })
            .unwrap_or_default();
        for line in &told.fresh_again {
            said.push_str(&format!("{line}\n"));
        }
        let body = format!(
            "{headline}\n{said}\n{link}\n\nEvent: {}\nEnvironment: {}\nDAG: {}\nTask: {}\nRun: {}\nNotification: #{}\n",
            n.event,
            n.environment,
            n.dag_id,
            if n.task_id.is_empty() {
                "-"
            } else {
                &n.task_id
            },
            n.run_id.map_or_else(|| "-".to_owned(), |r| r.to_string()),
            facts["notification_id"],
        );
        let message = message
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| format!("cannot build the email: {e}"))?;
        transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("the SMTP server did not take the email: {e}"))
    }

    async fn post(&self, url: &str, n: &NotificationRow) -> Result<(), String> {
        let res = self
            .client
            .post(url)
            .json(&payload(n, self.base_url.as_deref(), &self.told(n).await))
            .send()
            .await
            .map_err(|e| format!("the webhook did not answer: {}", without_url(&e)))?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered {}", res.status()))
        }
    }
}

/// A reqwest error without the URL (a webhook URL is a secret).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<webhook>");
    }
    s
}

/// A redactor for a channel URL's secret parts: the whole URL, its password (as written and
/// decoded: SMTP `AUTH` sends it decoded) and its path and query (a webhook's token).
fn url_redactor(url: &str) -> Redactor {
    let mut parts = vec![url.to_owned()];
    if let Some((_, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            parts.push(password.to_owned());
            parts.push(percent_decode(password));
        }
        // A bare `/` or a short path is no secret, and redacting it would garble the text.
        if path.len() >= 8 {
            parts.push(path.to_owned());
        }
    }
    Redactor::new(parts.iter().map(String::as_str))
}

/// `%XX` sequences decoded (invalid ones kept as written).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn secret(at: &SecretRef, what: &str) -> Result<String, String> {
    match at {
        SecretRef::Env(var) => std::env::var(var).map_err(|_| {
            format!("the {what} comes from the variable {var}, which is not set for the scheduler")
        }),
        SecretRef::File(path) => std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .map_err(|e| {
                format!(
                    "the {what} comes from {path}, which cannot be read: {}",
                    e.kind()
                )
            }),
    }
}

/// What a notification says beyond its event (see [`Notifier::told`]).
#[derive(Debug, Default)]
struct Told {
    /// The run's sentence and warnings.
    story: Option<(String, Vec<String>)>,
    /// A `stale` notification's episode, the data's age now (seconds) and the sentence.
    stale: Option<(StaleEpisode, i64, String)>,
    /// A recovery's lines for the stale episodes its run ended.
    fresh_again: Vec<String>,
}

/// The headline without Slack's emoji code: "lead_scoring failed in prod".
fn plain_headline(n: &NotificationRow, told: &Told) -> String {
    let what = headline(n, told);
    match what
        .strip_prefix(':')
        .and_then(|rest| rest.split_once(": "))
    {
        Some((_, text)) => text.to_owned(),
        None => what,
    }
}

/// Slack-compatible: `text` (what Slack shows) plus the facts for other receivers.
fn payload(n: &NotificationRow, base_url: Option<&str>, told: &Told) -> serde_json::Value {
    let story = told.story.as_ref();
    let mut what = match story {
        Some((sentence, _)) => format!("{}: {sentence}", headline(n, told)),
        None => headline(n, told),
    };
    for line in &told.fresh_again {
        what.push_str(&format!(" · {line}"));
    }
    let link = match (base_url, n.run_id) {
        (Some(b), Some(run)) => format!(" <{}/runs/{run}|run {run}>", b.trim_end_matches('/')),
        (Some(b), None) => format!(
            " <{}/dags/{}?env={}|{} in {}>",
            b.trim_end_matches('/'),
            n.dag_id,
            n.environment,
            n.dag_id,
            n.environment
        ),
        (None, Some(run)) => format!(" (run {run})"),
        (None, None) => String::new(),
    };
    let freshness = told.stale.as_ref().map(|(e, age, _)| {
        serde_json::json!({
            "max_age_secs": e.max_age_secs,
            "age_secs": age,
            "last_refreshed_at": e.last_refreshed_at,
            "stale_since": e.stale_since,
        })
    });
    serde_json::json!({
        "text": format!("{what}{link}"),
        "drover": {
            "event": n.event,
            "environment": n.environment,
            "dag_id": n.dag_id,
            "run_id": n.run_id,
            "task_id": (!n.task_id.is_empty()).then_some(&n.task_id),
            "notification_id": n.id,
            "summary": story.map(|s| &s.0),
            "warnings": story.map(|s| &s.1),
            "stale_episode": n.stale_episode,
            "freshness": freshness,
            "fresh_again": (!told.fresh_again.is_empty()).then_some(&told.fresh_again),
        }
    })
}

/// What happened, with Slack's emoji code first.
fn headline(n: &NotificationRow, told: &Told) -> String {
    match n.event.as_str() {
        "failure" => format!(":red_circle: {} failed in {}", n.dag_id, n.environment),
        "retry_exhausted" => format!(
            ":warning: {}.{} failed its last try in {}",
            n.dag_id, n.task_id, n.environment
        ),
        "recovery" => format!(
            ":large_green_circle: {} recovered in {}",
            n.dag_id, n.environment
        ),
        "deadline_missed" if n.task_id.is_empty() => format!(
            ":alarm_clock: {} missed its deadline in {}",
            n.dag_id, n.environment
        ),
        "deadline_missed" => format!(
            ":alarm_clock: {}.{} missed its deadline in {}",
            n.dag_id, n.task_id, n.environment
        ),
        "check_breach" => format!(
            ":bar_chart: check {}.{} is out of bounds in {}",
            n.dag_id, n.task_id, n.environment
        ),
        "warnings" => format!(
            ":large_yellow_circle: {} succeeded with warnings in {}",
            n.dag_id, n.environment
        ),
        "slo_burn" => format!(
            ":fire: data SLO {}.{} is burning its error budget fast in {}",
            n.dag_id, n.task_id, n.environment
        ),
        "approval_needed" => format!(
            ":raised_hand: {}.{} waits for approval to write to {}",
            n.dag_id, n.task_id, n.environment
        ),
        "stale" => match &told.stale {
            Some((_, _, sentence)) => format!(":hourglass: {sentence}"),
            None => format!(
                ":hourglass: {}'s data in {} is stale",
                crate::freshness::whose(&n.dag_id, &n.task_id),
                n.environment
            ),
        },
        other => format!("{other}: {} in {}", n.dag_id, n.environment),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_urls_secret_parts_are_redacted_in_every_form() {
        let smtp = url_redactor("smtps://ops%40example.com:p%40ss-w0rd!@mail.example.com:465");
        // 535 replies that quote the AUTH PLAIN and AUTH LOGIN exchanges.
        for (reply, leaked) in [
            (
                "535 5.7.8 bad credentials for AGJvYgBwQHNzLXcwcmQh",
                "QHNzLXcw",
            ),
            ("535 5.7.8 bad password cEBzcy13MHJkIQ==", "cEBzcy13MHJkIQ"),
            ("535 wrong password p@ss-w0rd!", "p@ss-w0rd!"),
            ("535 wrong password p%40ss-w0rd!", "p%40ss-w0rd!"),
        ] {
            let redacted = smtp.redact(reply);
            assert!(
                redacted.contains("***") && !redacted.contains(leaked),
                "{reply} → {redacted}"
            );
        }
        let hook = url_redactor("https://hooks.example.com/services/T000/B000/XXXXSECRET");
        let redacted = hook.redact(
            "proxy said: no route to /services/T000/B000/XXXXSECRET (%2Fservices%2FT000%2FB000%2FXXXXSECRET)",
        );
        assert_eq!(redacted, "proxy said: no route to /*** (%2F***)");
        assert_eq!(
            url_redactor("smtp://127.0.0.1:25").redact("the SMTP server did not take the email"),
            "the SMTP server did not take the email"
        );
    }
}
