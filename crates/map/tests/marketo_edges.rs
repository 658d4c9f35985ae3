//! The Marketo client at the vendor's edges, against the sandbox over real HTTP: status polls
//! at Adobe's cadence under a status that refreshes once a minute (scaled down), gzip on REST
//! answers, a base URL with `/rest`, and lookups checked against Describe Lead2.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use drover_map::{
    DateWindow, ExportRequest, LeadExportFilter, LeadQuery, MapConnector, MapError, MarketoClient,
    MarketoConfig, PollPolicy, RetryPolicy, Secret, Unlimited,
};
use drover_mapsim::{
    FaultProfile, Limits, RunningSandbox, SandboxConfig, SlowJobsFault, StatusLagFault,
};
use futures_util::StreamExt;
use serde_json::Value;

const CLIENT_ID: &str = "drover-edges";
const SECRET: &str = "edges-secret";

async fn sandbox(faults: FaultProfile, limits: Limits) -> RunningSandbox {
    let _ = rustls::crypto::ring::default_provider().install_default();
    drover_mapsim::start(
        SandboxConfig {
            leads: 1_000,
            seed: 7,
            client_id: CLIENT_ID.into(),
            client_secret: SECRET.into(),
            faults,
            limits,
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("sandbox starts")
}

fn config(base_url: String, poll: PollPolicy) -> MarketoConfig {
    let mut c = MarketoConfig::new(base_url, CLIENT_ID, Secret::new(SECRET));
    c.retry = RetryPolicy {
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(1),
        max_attempts: 8,
        ..RetryPolicy::default()
    };
    c.poll = poll;
    c
}

/// `policy` with every wait multiplied by `k`.
fn scaled(policy: &PollPolicy, k: f64) -> PollPolicy {
    PollPolicy {
        initial: policy.initial.mul_f64(k),
        max: policy.max.mul_f64(k),
        factor: policy.factor,
        max_wait: Duration::from_secs(120),
    }
}

/// The policy before this change: 1 s growing by a quarter to 60 s.
fn old_default() -> PollPolicy {
    PollPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
        factor: 1.25,
        max_wait: Duration::from_secs(12 * 3600),
    }
}

fn fast_poll() -> PollPolicy {
    PollPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
        factor: 2.0,
        max_wait: Duration::from_secs(60),
    }
}

async fn stats(sb: &RunningSandbox) -> Value {
    reqwest::get(format!("{}/_sandbox/stats", sb.base_url()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json")
}

fn calls_to(stats: &Value, endpoint: &str) -> u64 {
    stats["callsByEndpoint"][endpoint].as_u64().unwrap_or(0)
}

fn lead_export() -> ExportRequest {
    let end = Utc::now();
    ExportRequest::Leads {
        fields: vec!["id".into(), "email".into()],
        filter: LeadExportFilter::CreatedAt(
            DateWindow::new(end - chrono::Duration::days(31), end).expect("window"),
        ),
    }
}

/// Status calls one export costs with `poll` against a sandbox whose job takes `job` and
/// whose status refreshes every `refresh_secs`.
async fn status_calls_per_export(poll: PollPolicy, job: Duration, refresh_secs: u64) -> u64 {
    let faults = FaultProfile {
        status_lag: Some(StatusLagFault { secs: refresh_secs }),
        slow_jobs: Some(SlowJobsFault {
            queue_ms: 0,
            processing_ms: u64::try_from(job.as_millis()).expect("ms"),
            fail_probability: 0.0,
        }),
        ..FaultProfile::default()
    };
    let limits = Limits {
        job_latency: Duration::ZERO,
        ..Limits::default()
    };
    let sb = sandbox(faults, limits).await;
    let c = MarketoClient::new(config(sb.base_url(), poll), Arc::new(Unlimited)).expect("client");
    let done = c
        .run_export(&lead_export())
        .await
        .expect("export completes");
    assert!(done.number_of_records.is_some_and(|n| n > 0), "{done:?}");
    let s = stats(&sb).await;
    assert_eq!(
        calls_to(&s, "POST /bulk/v1/leads/export/create.json"),
        1,
        "{s}"
    );
    let polls = calls_to(&s, "GET /bulk/v1/leads/export/{id}/status.json");
    sb.shutdown().await;
    polls
}

/// Status polls per export job before and after, measured at the sandbox on a model scaled
/// by 1/30: a job of 2.5 minutes (5 s) whose status refreshes once a minute (every 2 s), polled
/// with the old and the new default policies, every wait divided by 30.
#[tokio::test]
async fn status_polls_per_job_before_and_after_at_a_once_a_minute_status() {
    const K: f64 = 1.0 / 30.0;
    let job = Duration::from_secs(150);
    let minute = Duration::from_secs(60);
    let (old, new) = tokio::join!(
        status_calls_per_export(scaled(&old_default(), K), job.mul_f64(K), 2),
        status_calls_per_export(scaled(&PollPolicy::default(), K), job.mul_f64(K), 2),
    );
    let old_model = old_default().polls_for(job, minute);
    let new_model = PollPolicy::default().polls_for(job, minute);
    eprintln!(
        "status polls for a 2.5-minute export, status refreshed once a minute: old {old} (model {old_model}), new {new} (model {new_model})"
    );
    assert_eq!((old_model, new_model), (18, 6));
    assert!(old.abs_diff(old_model) <= 1, "old policy: {old} polls");
    assert!(new.abs_diff(new_model) <= 1, "new policy: {new} polls");
    assert!(new <= 7 && new * 2 < old, "old {old}, new {new}");
}

#[tokio::test]
async fn rest_answers_arrive_gzipped_and_parse_while_bulk_files_do_not() {
    let sb = sandbox(FaultProfile::default(), Limits::default()).await;
    let c = MarketoClient::new(config(sb.base_url(), fast_poll()), Arc::new(Unlimited))
        .expect("client");
    let ids: Vec<String> = (1..=600).map(|i| i.to_string()).collect();
    let leads = c
        .fetch_leads(&LeadQuery {
            filter_type: "id".into(),
            values: ids,
            fields: vec![
                "id".into(),
                "email".into(),
                "firstName".into(),
                "lastName".into(),
                "company".into(),
            ],
        })
        .await
        .expect("leads");
    assert_eq!(leads.len(), 600);
    assert!(leads.iter().all(|l| l.get("email").is_some()));
    let s = stats(&sb).await;
    assert_eq!(calls_to(&s, "GET /rest/v1/leads.json"), 2, "{s}");
    assert_eq!(s["gzipResponses"], 2, "both pages came compressed: {s}");

    // A bulk file is never compressed, and a broken download still resumes with Range.
    let export = c.run_export(&lead_export()).await.expect("export");
    sb.set_faults(FaultProfile {
        broken_downloads: Some(drover_mapsim::BrokenDownloadFault { probability: 0.6 }),
        ..FaultProfile::default()
    });
    let mut stream = c.download_export(&export);
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        bytes += chunk.expect("chunk (checksum verified at the end)").len() as u64;
    }
    assert_eq!(Some(bytes), export.file_size);
    let s = stats(&sb).await;
    assert_eq!(s["gzipResponses"], 2, "no bulk answer compressed: {s}");
    assert!(
        s["httpStatus"]["206"].as_u64().unwrap_or(0) >= 1,
        "the download resumed with Range: {s}"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn a_base_url_with_rest_reads_leads_and_other_paths_are_refused() {
    let sb = sandbox(FaultProfile::default(), Limits::default()).await;
    for suffix in ["/rest", "/rest/", "/"] {
        let c = MarketoClient::new(
            config(format!("{}{suffix}", sb.base_url()), fast_poll()),
            Arc::new(Unlimited),
        )
        .expect("client");
        let leads = c
            .fetch_leads(&LeadQuery {
                filter_type: "id".into(),
                values: vec!["1".into(), "2".into()],
                fields: vec!["id".into(), "email".into()],
            })
            .await
            .unwrap_or_else(|e| panic!("{suffix}: {e}"));
        assert_eq!(leads.len(), 2, "{suffix}");
    }
    for path in ["/identity", "/bulk/v1", "/rest/v1"] {
        let err = MarketoClient::new(
            config(format!("{}{path}", sb.base_url()), fast_poll()),
            Arc::new(Unlimited),
        )
        .expect_err(path);
        assert!(matches!(err, MapError::Config(_)), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("use {} — without {path}", sb.base_url())),
            "{err}"
        );
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn lookups_are_checked_against_describe_lead2_once() {
    let sb = sandbox(FaultProfile::default(), Limits::default()).await;
    let c = MarketoClient::new(config(sb.base_url(), fast_poll()), Arc::new(Unlimited))
        .expect("client");
    let keys = c.searchable_fields().await.expect("describe2");
    assert!(keys.contains(&vec!["email".to_owned()]), "{keys:?}");
    c.check_lookup_field("email")
        .await
        .expect("email is searchable");
    c.check_lookup_field("id").await.expect("id is searchable");
    let scoped = c.scoped();
    let err = scoped
        .check_lookup_field("firstName")
        .await
        .expect_err("firstName is not searchable");
    assert_eq!(
        err.to_string(),
        "`firstName` cannot be used as a lookup: Marketo can only find leads by id, email, sfdcLeadId or sfdcContactId (the searchable fields of this instance)"
    );
    let s = stats(&sb).await;
    assert_eq!(
        calls_to(&s, "GET /rest/v1/leads/describe2.json"),
        1,
        "cached: {s}"
    );
    sb.shutdown().await;
}
