//! The client against an instance whose limits another integration shares (the sandbox's
//! `shared-limit` fault over real HTTP, its window scaled down with the client's): it slows
//! down instead of hammering, gets every call through, tells its observer, speeds back up once
//! the other integration stops, and gives up in plain words when its time runs out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_map::{
    MapError, MapObject, MarketoClient, MarketoConfig, Notice, Observer, PollPolicy, RateLimit,
    RetryPolicy, Scope, Secret, Unlimited,
};
use drover_mapsim::{
    FaultProfile, Limits, RateLimitFault, RunningSandbox, SandboxConfig, SharedLimitFault,
};

const CLIENT_ID: &str = "drover-shared";
const SECRET: &str = "shared-secret-5d1e";
/// The scaled-down rate window, the same for the sandbox and the client.
const WINDOW: Duration = Duration::from_millis(500);

async fn sandbox(faults: FaultProfile) -> RunningSandbox {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = SandboxConfig {
        leads: 50,
        seed: 3,
        client_id: CLIENT_ID.into(),
        client_secret: SECRET.into(),
        faults,
        limits: Limits {
            rate_window: WINDOW,
            job_latency: Duration::from_millis(100),
            ..Limits::default()
        },
        ..Default::default()
    };
    drover_mapsim::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sandbox starts")
}

fn client(sb: &RunningSandbox, calls: u32, concurrency: u32) -> MarketoClient {
    let mut c = MarketoConfig::new(sb.base_url(), CLIENT_ID, Secret::new(SECRET));
    c.rate = RateLimit {
        calls_per_20s: calls,
        concurrency,
        window: WINDOW,
    };
    c.retry = RetryPolicy {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(500),
        rate_limited_patience: Duration::from_secs(60),
        max_attempts: 6,
    };
    c.poll = PollPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
        factor: 2.0,
        max_wait: Duration::from_secs(60),
    };
    MarketoClient::new(c, Arc::new(Unlimited)).expect("client")
}

/// A handle whose notices are recorded.
fn observed(c: &MarketoClient) -> (MarketoClient, Arc<Mutex<Vec<Notice>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let handle = c.scoped_with(Scope {
        deadline: None,
        observer: Some(Observer::new(move |n| {
            s.lock().expect("lock").push(n.clone());
        })),
    });
    (handle, seen)
}

/// `n` describe calls at once, every one of which must succeed.
async fn reads(c: &MarketoClient, n: usize) {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.describe_fields(MapObject::Leads).await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("every read gets through");
    }
}

/// Keeps reading until the pace is back at the configured limit (at most `within`).
async fn until_restored(c: &MarketoClient, within: Duration) {
    let limit = c.limiter().limit();
    let until = tokio::time::Instant::now() + within;
    loop {
        let pace = c.limiter().pace();
        if pace.calls == limit.calls_per_20s && pace.concurrency == limit.concurrency {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "still at {pace:?} after {within:?}"
        );
        c.describe_fields(MapObject::Leads)
            .await
            .expect("a read once the instance is free");
        // A task's pace of work, not a flood.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn shared(other_calls: u32, other_concurrent: u32) -> FaultProfile {
    FaultProfile {
        shared_limit: Some(SharedLimitFault {
            other_calls_per_20s: other_calls,
            other_concurrent,
        }),
        ..FaultProfile::default()
    }
}

#[tokio::test]
async fn slows_down_under_a_shared_rate_limit_and_recovers_when_it_ends() {
    // Another integration leaves 10 of the instance's 100 calls per window.
    let sb = sandbox(shared(90, 0)).await;
    let base = client(&sb, 20, 5);
    let (c, seen) = observed(&base);
    reads(&c, 80).await;
    let usage = c.usage();
    let refused = usage.errors_by_code.get("606").copied().unwrap_or(0);
    let through = usage.calls - refused;
    assert_eq!(through, 80, "{usage:?}");
    eprintln!(
        "shared rate limit: {through} calls through, {refused} answered 606, pace {:?}",
        c.limiter().pace()
    );
    // Slowing down keeps the refusals few: a fixed-pace client at 20 per window would have
    // about as many 606s as successes.
    assert!(
        refused * 4 < through,
        "{refused} 606s for {through} calls: {usage:?}"
    );
    let slowed = seen
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|n| match n {
            Notice::RateSlowed { calls, .. } => Some(*calls),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert!(
        !slowed.is_empty() && slowed.iter().all(|c| *c <= 10),
        "{slowed:?}"
    );
    assert!(
        seen.lock().expect("lock")[0]
            .to_string()
            .starts_with("Marketo rate limit shared: slowed to"),
        "{:?}",
        seen.lock().expect("lock")
    );
    assert!(c.limiter().pace().calls < 20);
    // The other integration stops: the pace grows back to the configured 20 per window.
    sb.set_faults(FaultProfile::default());
    until_restored(&c, Duration::from_secs(30)).await;
    assert_eq!(
        seen.lock().expect("lock").last(),
        Some(&Notice::RateRestored {
            calls: 20,
            window: WINDOW
        })
    );
    assert_eq!(
        seen.lock().expect("lock").last().map(ToString::to_string),
        Some("Marketo rate limit: back to 20 calls/500 ms".to_owned())
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn slows_down_under_a_shared_concurrency_limit_and_recovers_when_it_ends() {
    // Calls take 60 ms, and another integration keeps 8 of the instance's 10 slots busy.
    let faults = FaultProfile {
        rate_limit: Some(RateLimitFault {
            calls_per_20s: 100,
            concurrent: 10,
            latency_ms: 60,
        }),
        ..shared(0, 8)
    };
    let sb = sandbox(faults).await;
    let base = client(&sb, 50, 5);
    let (c, seen) = observed(&base);
    reads(&c, 40).await;
    let usage = c.usage();
    let refused = usage.errors_by_code.get("615").copied().unwrap_or(0);
    let through = usage.calls - refused;
    assert_eq!(through, 40, "{usage:?}");
    eprintln!(
        "shared concurrency: {through} calls through, {refused} answered 615, pace {:?}",
        c.limiter().pace()
    );
    assert!(
        refused * 2 < through,
        "{refused} 615s for {through} calls: {usage:?}"
    );
    assert!(
        seen.lock()
            .expect("lock")
            .iter()
            .any(|n| matches!(n, Notice::ConcurrencySlowed { concurrent } if *concurrent <= 2)),
        "{:?}",
        seen.lock().expect("lock")
    );
    sb.set_faults(FaultProfile::default());
    until_restored(&c, Duration::from_secs(30)).await;
    assert!(
        seen.lock()
            .expect("lock")
            .contains(&Notice::ConcurrencyRestored { concurrent: 5 }),
        "{:?}",
        seen.lock().expect("lock")
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn gives_up_at_the_deadline_saying_why() {
    // The other integration uses every call of the instance.
    let sb = sandbox(shared(100, 0)).await;
    let base = client(&sb, 50, 5);
    let started = tokio::time::Instant::now();
    let c = base.scoped_with(Scope {
        deadline: Some(started + Duration::from_secs(3)),
        observer: None,
    });
    let err = c
        .describe_fields(MapObject::Leads)
        .await
        .expect_err("no call can get through");
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, MapError::RateLimited { code, attempts, .. } if code == "606" && *attempts > 2),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(
            "gave up on the describe leads request: Marketo's rate limit stayed exhausted for"
        ),
        "{text}"
    );
    assert!(
        text.contains("other integrations use most of the instance's 100 calls per 20 s"),
        "{text}"
    );
    assert!(err.is_retryable());
    // It stopped before the deadline instead of sleeping past it, and far later than six
    // quick attempts would have.
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(elapsed > Duration::from_secs(1), "{elapsed:?}");
    // One attempt per held window, not a burst of them.
    let refused = c.usage().errors_by_code.get("606").copied().unwrap_or(0);
    assert!(refused <= 7, "{refused} attempts in 3 s of 500 ms windows");
    sb.shutdown().await;
}
