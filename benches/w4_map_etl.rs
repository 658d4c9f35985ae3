//! W4: leads exported from the MAP sandbox, normalized, deduped and scored in the staging
//! schema, and returned by bulk import — end to end through real `drover scheduler` and
//! `drover worker` processes, the sandbox speaking HTTP with its limits off.
//!
//! Workload: `--leads N` (default 1,000,000) seeded leads; the DAG `w4` exports every lead
//! (id, email, country, leadScore, updatedAt) in 31-day windows, normalizes email and country,
//! dedupes by email keeping the latest, derives a score, and returns `leadScore` by bulk import
//! keyed on id, with the values before the write recorded (unless `--no-snapshot`).
//!
//! The sandbox enforces Marketo's documented limits (100 calls / 20 s and 10 concurrent per
//! instance, 50,000 calls a day, 500 MB of export files a day, 2 bulk jobs processing and 10
//! queued); `--limits-off` lifts them, as the first measurements did.
//!
//! Reports rows/s end to end (trigger to success, over the leads exported), each task's time
//! and MAP calls, the calls the sandbox answered by endpoint, status polls per export job, and
//! the worker's peak RSS (VmHWM) with its RSS sampled during the run.
//!
//! Run: `cargo bench --bench w4_map_etl -- [--leads N] [--no-snapshot] [--limits-off]`
//! (`DROVER_BENCH_DATABASE_URL` names the server; a database is created and dropped.)

#[path = "../crates/engine/benches/support/mod.rs"]
mod support;

use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use drover_mapsim::{FaultProfile, Limits, SandboxConfig};
use drover_store::{RunState, Store};
use support::Error;

struct Args {
    leads: usize,
    snapshot: bool,
    limits_off: bool,
}

fn args() -> Args {
    let mut a = Args {
        leads: 1_000_000,
        snapshot: true,
        limits_off: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--leads" => {
                if let Some(n) = it.next().and_then(|v| v.parse().ok()) {
                    a.leads = n;
                }
            }
            "--no-snapshot" => a.snapshot = false,
            "--limits-off" => a.limits_off = true,
            _ => {}
        }
    }
    a
}

struct Summary {
    leads: usize,
    exported: i64,
    returned: i64,
    elapsed: Duration,
    tasks: Vec<(String, f64)>,
    peak_rss_kb: u64,
    rss_samples_mb: Vec<u64>,
    snapshot: bool,
    limits_off: bool,
    /// (task, seconds, MAP calls of its last try).
    task_calls: Vec<(String, i64)>,
    /// The sandbox's `/_sandbox/stats`.
    sandbox_stats: serde_json::Value,
}

/// Kills its child (and waits) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

async fn bench(url: String, a: Args) -> Result<Summary, Error> {
    let ws = tempfile::tempdir()?;
    let secret = format!("w4-{}", uuid::Uuid::new_v4().simple());
    let sandbox = drover_mapsim::start(
        SandboxConfig {
            leads: a.leads,
            seed: 42,
            client_id: "w4".to_owned(),
            client_secret: secret.clone(),
            faults: FaultProfile::default(),
            limits: if a.limits_off {
                Limits::off()
            } else {
                Limits::default()
            },
            ..SandboxConfig::default()
        },
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let dir = ws.path();
    std::fs::create_dir_all(dir.join("dags"))?;
    std::fs::create_dir_all(dir.join("environments"))?;
    std::fs::write(dir.join("id"), "w4")?;
    std::fs::write(dir.join("secret"), &secret)?;
    std::fs::write(
        dir.join("environments/dev.yaml"),
        format!(
            "name: dev\norder: 1\nbranch: main\nmap:\n  kind: marketo\n  base_url: {}\n  client_id: {{ file: {} }}\n  client_secret: {{ file: {} }}\n  calls_per_20s: 100\n  concurrent_calls: 10\n  status_poll: {{ first: 250ms, max: 2s }}\n",
            sandbox.base_url(),
            dir.join("id").display(),
            dir.join("secret").display()
        ),
    )?;
    let since = (chrono::Utc::now() - chrono::Duration::days(401)).format("%Y-%m-%dT00:00:00Z");
    let until = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%dT00:00:00Z");
    std::fs::write(
        dir.join("dags/w4.yaml"),
        format!(
            r#"id: w4
tasks:
  - id: export_leads
    export:
      object: leads
      fields: [id, email, country, leadScore, updatedAt]
      filter: {{ updated_at: {{ since: "{since}", until: "{until}" }} }}
  - id: score
    depends_on: [export_leads]
    transform:
      - normalize: {{ email: lower_trim, country: iso_alpha2 }}
      - dedupe: {{ key: email, keep: latest }}
      - derive: {{ leadScore: "least(100, coalesce(\"leadScore\", 0) + case when country = 'US' then 10 else 5 end)" }}
  - id: push_scores
    depends_on: [score]
    return: {{ object: leads, lookup: id, fields: [leadScore], mode: import, snapshot: {} }}
"#,
            a.snapshot
        ),
    )?;
    let drover = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
        c.args(args)
            .env("DATABASE_URL", &url)
            .env("DROVER_DAGS_DIR", dir.join("dags"))
            .env("DROVER_ENVIRONMENTS_DIR", dir.join("environments"))
            .env("RUST_LOG", "warn")
            .current_dir(dir);
        c
    };
    let out = drover(&["db", "migrate"]).output()?;
    if !out.status.success() {
        return Err(format!("migrate: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let _scheduler = Proc(
        drover(&["scheduler", "--tick-ms", "200", "--sync-secs", "1"])
            .stdout(Stdio::null())
            .spawn()?,
    );
    let worker = Proc(
        drover(&["worker", "--concurrency", "2", "--poll-ms", "100"])
            .stdout(Stdio::null())
            .spawn()?,
    );
    let store = Store::connect(&url, 2).await?;
    let synced = Instant::now();
    while store.dag_env("w4", "dev").await.is_err() {
        if synced.elapsed() > Duration::from_secs(30) {
            return Err("the DAG was not synced within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let out = drover(&["runs", "trigger", "w4", "--env", "dev"]).output()?;
    let run = uuid::Uuid::parse_str(String::from_utf8_lossy(&out.stdout).trim())
        .map_err(|e| format!("trigger: {e}: {}", String::from_utf8_lossy(&out.stderr)))?;
    let pid = worker.0.id();
    let mut samples = Vec::new();
    let mut last_sample = Instant::now() - Duration::from_secs(1);
    let row = loop {
        if last_sample.elapsed() >= Duration::from_millis(500) {
            samples.push(status_kb(pid, "VmRSS:").unwrap_or(0) / 1024);
            last_sample = Instant::now();
        }
        let r = store.get_run(run).await?;
        if r.state.is_finished() {
            break r;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err("the run did not finish within 30 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = started.elapsed();
    let peak_rss_kb = status_kb(pid, "VmHWM:").unwrap_or(0);
    let tis = store.task_instances(run).await?;
    if row.state != RunState::Success {
        let errors: Vec<String> = tis
            .iter()
            .filter_map(|t| t.last_error.clone().map(|e| format!("{}: {e}", t.task_id)))
            .collect();
        return Err(format!("the run failed: {}", errors.join("; ")).into());
    }
    let tasks = tis
        .iter()
        .filter_map(|t| {
            let (s, f) = (t.started_at?, t.finished_at?);
            Some((
                t.task_id.clone(),
                (f - s).num_milliseconds() as f64 / 1000.0,
            ))
        })
        .collect();
    let exported = store
        .dataset(run, "export_leads", "output")
        .await?
        .map_or(0, |d| d.row_count);
    let returned = store
        .dataset(run, "score", "output")
        .await?
        .map_or(0, |d| d.row_count);
    if std::env::var_os("W4_LOG").is_some() {
        let lines: Vec<(chrono::DateTime<chrono::Utc>, String)> = sqlx::query_as(
            "select l.at, ti.task_id || ': ' || l.line from task_log l join task_instance ti on ti.id = l.task_instance_id
             where ti.run_id = $1 order by l.id",
        )
        .bind(run)
        .fetch_all(store.pool())
        .await?;
        if let Some((first, _)) = lines.first().cloned() {
            for (at, line) in lines {
                eprintln!(
                    "  +{:6.2}s {line}",
                    (at - first).num_milliseconds() as f64 / 1000.0
                );
            }
        }
    }
    let task_calls: Vec<(String, i64)> = sqlx::query_as(
        "select ti.task_id, coalesce(sum(tt.api_calls), 0)::bigint from task_instance ti
         left join task_try tt on tt.task_instance_id = ti.id where ti.run_id = $1
         group by ti.task_id order by ti.task_id",
    )
    .bind(run)
    .fetch_all(store.pool())
    .await?;
    let sandbox_stats: serde_json::Value =
        reqwest::get(format!("{}/_sandbox/stats", sandbox.base_url()))
            .await?
            .json()
            .await?;
    drop(worker);
    sandbox.shutdown().await;
    Ok(Summary {
        leads: a.leads,
        exported,
        returned,
        elapsed,
        tasks,
        peak_rss_kb,
        rss_samples_mb: samples,
        snapshot: a.snapshot,
        limits_off: a.limits_off,
        task_calls,
        sandbox_stats,
    })
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = args();
    support::run_on_fresh_database(
        move |url| bench(url, a),
        |s: &Summary, before, after| {
            let secs = s.elapsed.as_secs_f64();
            println!(
                "W4 MAP ETL: {} leads seeded, {} exported, {} returned (deduped), snapshot {}, {}",
                s.leads,
                s.exported,
                s.returned,
                if s.snapshot { "on" } else { "off" },
                if s.limits_off {
                    "sandbox limits off"
                } else {
                    "Marketo's limits"
                }
            );
            println!(
                "  end to end {secs:.1} s = {:.0} rows/s (exported rows over trigger-to-success time)",
                s.exported as f64 / secs
            );
            for (task, t) in &s.tasks {
                let calls = s
                    .task_calls
                    .iter()
                    .find(|(n, _)| n == task)
                    .map_or(0, |(_, c)| *c);
                println!("  {task:<14} {t:>7.1} s  {calls:>5} MAP calls");
            }
            let by_endpoint = &s.sandbox_stats["callsByEndpoint"];
            println!(
                "  sandbox answered {} calls: {}",
                s.sandbox_stats["calls"],
                by_endpoint
                    .as_object()
                    .map(|m| m
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            );
            let count = |suffix: &str| {
                by_endpoint.as_object().map_or(0, |m| {
                    m.iter()
                        .filter(|(k, _)| {
                            k.starts_with("GET /bulk/v1/leads/export/") && k.ends_with(suffix)
                        })
                        .map(|(_, v)| v.as_u64().unwrap_or(0))
                        .sum::<u64>()
                })
            };
            let jobs = by_endpoint.as_object().map_or(0, |m| {
                m.iter()
                    .filter(|(k, _)| k.as_str() == "POST /bulk/v1/leads/export/create.json")
                    .map(|(_, v)| v.as_u64().unwrap_or(0))
                    .sum::<u64>()
            });
            if jobs > 0 {
                println!(
                    "  lead export jobs {jobs}, status polls {} ({:.1} per job)",
                    count("/status.json"),
                    count("/status.json") as f64 / jobs as f64
                );
            }
            println!(
                "  worker peak RSS {:.0} MB; RSS samples (MB, every 0.5 s): {:?}",
                s.peak_rss_kb as f64 / 1024.0,
                s.rss_samples_mb
            );
            println!("  load average before: {before}; after: {after}");
        },
    )
}
