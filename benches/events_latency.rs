//! Events: from a webhook's event accepted to its run's first task started, through real
//! `drover web`, `drover scheduler` and `drover worker` processes on a database of their own,
//! as in production; then the sustainable event rate with batching on.
//!
//! Workload 1 (latency): the DAG `hook_one` (one `noop` task, `max_active_runs: 64`) has a
//! webhook trigger without batching: each event is a run. An open-loop sender posts
//! `--rate` events a second (default 100) for `--secs` seconds (default 60), each with a
//! bearer secret and an Idempotency-Key, on new tasks so a slow answer never delays the next
//! send. Latency per event is `task_try.started_at` of its run's first task minus
//! `event.received_at` (both the database's clock; `received_at` is the start of the
//! accepting transaction, so the figure includes the commit, the scheduler creating the
//! task instance and the worker claiming it). Reported: p50, p90, p99, max; events sent,
//! answered 202, runs, tries — every event must have exactly one run, every run one try.
//!
//! Workload 2 (batching): the DAG `hook_batch` gathers events (`batch: { max_events: 500,
//! max_wait: 1s }`); `--senders` (default 32) closed-loop senders post as fast as answers
//! come back for `--batch-secs` (default 20). Reported: events accepted per second, runs made,
//! events per run, and the time from the last event to the last run's success.
//!
//! Run: `cargo bench --bench events_latency -- [--rate N] [--secs N] [--senders N]
//! [--batch-secs N] [--smoke]` (`--smoke`: 20 events/s for 3 s, batching for 2 s).
//! `DROVER_BENCH_DATABASE_URL` names the server; a database is created and dropped.

#[path = "../crates/engine/benches/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use drover_store::Store;
use support::Error;

struct Args {
    rate: u64,
    secs: u64,
    senders: usize,
    batch_secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        rate: 100,
        secs: 60,
        senders: 32,
        batch_secs: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |d: u64| it.next().and_then(|v| v.parse().ok()).unwrap_or(d);
        match arg.as_str() {
            "--rate" => a.rate = num(a.rate),
            "--secs" => a.secs = num(a.secs),
            "--senders" => a.senders = usize::try_from(num(a.senders as u64)).unwrap_or(32),
            "--batch-secs" => a.batch_secs = num(a.batch_secs),
            "--smoke" => {
                a.rate = 20;
                a.secs = 3;
                a.senders = 4;
                a.batch_secs = 2;
            }
            _ => {}
        }
    }
    a
}

/// Kills its child (and waits) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Latency {
    sent: u64,
    accepted: u64,
    runs: i64,
    tries: i64,
    ms: Vec<f64>,
}

struct Batching {
    secs: f64,
    accepted: u64,
    refused: u64,
    runs: i64,
    rows_per_run: Vec<i64>,
    drain_secs: f64,
}

struct Summary {
    rate: u64,
    secs: u64,
    senders: usize,
    latency: Latency,
    batching: Batching,
}

fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn bench(url: String, a: Args) -> Result<Summary, Error> {
    let ws = tempfile::tempdir()?;
    let dir = ws.path();
    std::fs::create_dir_all(dir.join("dags"))?;
    std::fs::create_dir_all(dir.join("environments"))?;
    let secret = format!("hook-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(dir.join("hook-secret"), &secret)?;
    std::fs::write(
        dir.join("environments/dev.yaml"),
        format!(
            "name: dev\norder: 1\nbranch: main\nconcurrency: 64\nmap:\n  kind: marketo\n  base_url: http://127.0.0.1:9\n  client_id: {{ env: X_ID }}\n  client_secret: {{ env: X_SECRET }}\nsecrets:\n  hook: {{ file: {} }}\n",
            dir.join("hook-secret").display()
        ),
    )?;
    std::fs::write(
        dir.join("dags/hook_one.yaml"),
        "id: hook_one\nmax_active_runs: 64\ntriggers:\n  - webhook: { name: form, secret: hook }\ntasks:\n  - id: first\n    noop: {}\n",
    )?;
    std::fs::write(
        dir.join("dags/hook_batch.yaml"),
        "id: hook_batch\nmax_active_runs: 4\ntriggers:\n  - webhook: { name: form, secret: hook, batch: { max_events: 500, max_wait: 1s } }\ntasks:\n  - id: first\n    noop: {}\n",
    )?;
    let port = free_port()?;
    let drover = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
        c.args(args)
            .env("DATABASE_URL", &url)
            .env("DROVER_DAGS_DIR", dir.join("dags"))
            .env("DROVER_ENVIRONMENTS_DIR", dir.join("environments"))
            .env("RUST_LOG", "warn")
            .current_dir(dir)
            .stdout(Stdio::null());
        c
    };
    let out = drover(&["db", "migrate"]).output()?;
    if !out.status.success() {
        return Err(format!("migrate: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let _scheduler = Proc(drover(&["scheduler", "--sync-secs", "1"]).spawn()?);
    let _worker = Proc(drover(&["worker", "--concurrency", "16"]).spawn()?);
    let listen = format!("127.0.0.1:{port}");
    let _web = Proc(drover(&["web", "--listen", &listen]).spawn()?);
    let store = Store::connect(&url, 4).await?;
    let base = format!("http://{listen}");
    // reqwest's TLS needs a crypto provider chosen, as the tests' clients do.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let ready = Instant::now();
    loop {
        let up = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up
            && store.dag_env("hook_one", "dev").await.is_ok()
            && store.dag_env("hook_batch", "dev").await.is_ok()
        {
            break;
        }
        if ready.elapsed() > Duration::from_secs(60) {
            return Err("web, scheduler and the DAGs were not ready within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let latency = latency(&http, &store, &base, &secret, &a).await?;
    let batching = batching(&http, &store, &base, &secret, &a).await?;
    Ok(Summary {
        rate: a.rate,
        secs: a.secs,
        senders: a.senders,
        latency,
        batching,
    })
}

/// Post one event; true when answered 202.
async fn post(http: &reqwest::Client, url: &str, secret: &str, key: &str, n: u64) -> bool {
    http.post(url)
        .bearer_auth(secret)
        .header("Idempotency-Key", key)
        .json(&serde_json::json!({ "n": n, "email": format!("lead{n}@example.com") }))
        .send()
        .await
        .is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED)
}

async fn latency(
    http: &reqwest::Client,
    store: &Store,
    base: &str,
    secret: &str,
    a: &Args,
) -> Result<Latency, Error> {
    let url = format!("{base}/hooks/dev/hook_one/form");
    let total = a.rate * a.secs;
    let accepted = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / a.rate.max(1) as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..total {
        tick.tick().await;
        let (http, url, secret, accepted) = (
            http.clone(),
            url.clone(),
            secret.to_owned(),
            accepted.clone(),
        );
        sends.spawn(async move {
            if post(&http, &url, &secret, &format!("one-{n}"), n).await {
                accepted.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while sends.join_next().await.is_some() {}
    let accepted = accepted.load(Ordering::Relaxed);
    // Every accepted event's run has started its task (or the wait gives up).
    let waited = Instant::now();
    loop {
        let started: i64 = sqlx::query_scalar(
            "select count(*) from event e join task_instance ti on ti.run_id = e.run_id \
             where e.dag_id = 'hook_one' and ti.started_at is not null",
        )
        .fetch_one(store.pool())
        .await?;
        if u64::try_from(started).unwrap_or(0) >= accepted
            || waited.elapsed() > Duration::from_secs(120)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ms: Vec<f64> = sqlx::query_scalar(
        "select extract(epoch from (min(tt.started_at) - e.received_at))::float8 * 1000 \
         from event e join task_instance ti on ti.run_id = e.run_id \
         join task_try tt on tt.task_instance_id = ti.id \
         where e.dag_id = 'hook_one' group by e.id, e.received_at",
    )
    .fetch_all(store.pool())
    .await?;
    let (runs, tries): (i64, i64) = sqlx::query_as(
        "select count(distinct e.run_id), count(tt.*) from event e \
         join task_instance ti on ti.run_id = e.run_id \
         left join task_try tt on tt.task_instance_id = ti.id where e.dag_id = 'hook_one'",
    )
    .fetch_one(store.pool())
    .await?;
    Ok(Latency {
        sent: total,
        accepted,
        runs,
        tries,
        ms,
    })
}

async fn batching(
    http: &reqwest::Client,
    store: &Store,
    base: &str,
    secret: &str,
    a: &Args,
) -> Result<Batching, Error> {
    let url = format!("{base}/hooks/dev/hook_batch/form");
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(a.batch_secs);
    let began = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for s in 0..a.senders {
        let (http, url, secret, accepted, refused) = (
            http.clone(),
            url.clone(),
            secret.to_owned(),
            accepted.clone(),
            refused.clone(),
        );
        senders.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let key = format!("batch-{s}-{n}");
                if post(&http, &url, &secret, &key, n).await {
                    accepted.fetch_add(1, Ordering::Relaxed);
                } else {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
        });
    }
    while senders.join_next().await.is_some() {}
    let secs = began.elapsed().as_secs_f64();
    let sent_all = Instant::now();
    let accepted = accepted.load(Ordering::Relaxed);
    loop {
        let unfinished: i64 = sqlx::query_scalar(
            "select count(*) from dag_run where dag_id = 'hook_batch' and state in ('queued', 'running')",
        )
        .fetch_one(store.pool())
        .await?;
        if unfinished == 0 || sent_all.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain_secs = sent_all.elapsed().as_secs_f64();
    let per_run: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
        "select r.id, count(e.id) from dag_run r join event e on e.run_id = r.id \
         where r.dag_id = 'hook_batch' and r.state = 'success' group by r.id",
    )
    .fetch_all(store.pool())
    .await?;
    let in_runs: HashMap<uuid::Uuid, i64> = per_run.into_iter().collect();
    Ok(Batching {
        secs,
        accepted,
        refused: refused.load(Ordering::Relaxed),
        runs: i64::try_from(in_runs.len()).unwrap_or(0),
        rows_per_run: in_runs.values().copied().collect(),
        drain_secs,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn print(s: &Summary, load_before: &str, load_after: &str) {
    let l = &s.latency;
    let mut ms = l.ms.clone();
    ms.sort_by(f64::total_cmp);
    println!(
        "events: {} cores, load before {load_before}, after {load_after}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "latency (event accepted → first task started), {} events/s for {} s, no batching:",
        s.rate, s.secs
    );
    println!(
        "  sent {}, answered 202 {}, runs {}, task tries {} ({})",
        l.sent,
        l.accepted,
        l.runs,
        l.tries,
        if u64::try_from(l.runs).unwrap_or(0) == l.accepted && l.tries == l.runs {
            "every accepted event one run, every run one try"
        } else {
            "MISMATCH: events lost or run twice"
        }
    );
    println!(
        "  p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    );
    let b = &s.batching;
    let events_in_runs: i64 = b.rows_per_run.iter().sum();
    println!(
        "batching (max_events 500, max_wait 1s), {} closed-loop senders for {:.1} s:",
        s.senders, b.secs
    );
    println!(
        "  accepted {} ({:.0} events/s), refused {}, runs {}, events in succeeded runs {} ({}), last run done {:.2} s after the last event",
        b.accepted,
        b.accepted as f64 / b.secs.max(0.001),
        b.refused,
        b.runs,
        events_in_runs,
        if u64::try_from(events_in_runs).unwrap_or(0) == b.accepted {
            "all"
        } else {
            "MISMATCH"
        },
        b.drain_secs
    );
}

fn main() -> ExitCode {
    let a = args();
    support::run_on_fresh_database(move |url| bench(url, a), print)
}
