//! What both engine benchmarks share: a database of their own (dropped at the end, even on
//! a panic or Ctrl-C), logging, and the machine's load.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::process::ExitCode;

use drover_store::Store;
use uuid::Uuid;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Run `bench` on a fresh database (its URL is the argument) and print its result with the
/// load before and after; the database is dropped whatever happens.
pub fn run_on_fresh_database<S, Fut>(
    bench: impl FnOnce(String) -> Fut,
    print: impl FnOnce(&S, &str, &str),
) -> ExitCode
where
    S: Send + 'static,
    Fut: Future<Output = Result<S, Error>> + Send + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = std::env::var("DROVER_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("drover_bench_{}", Uuid::new_v4().simple());
    let url = database_url(&server, &name);
    let load_before = loadavg();
    let outcome = runtime.block_on(async {
        // In a task of its own, so a panic comes back as an error and the database is still
        // dropped; Ctrl-C also drops it.
        let body = tokio::spawn(bench(url));
        tokio::select! {
            joined = body => match joined {
                Ok(r) => r,
                Err(e) => Err(format!("benchmark panicked: {e}").into()),
            },
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    });
    let dropped = runtime.block_on(drop_database(&server, &name));
    let code = match outcome {
        Ok(summary) => {
            print(&summary, &load_before, &loadavg());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    };
    if let Err(e) = dropped {
        eprintln!("warning: cannot drop database {name}: {e}");
    }
    code
}

/// `server` with its database replaced by `name` (query parameters kept).
pub fn database_url(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server, None),
    };
    let prefix = match base.find("://") {
        Some(scheme) => match base[scheme + 3..].find('/') {
            Some(slash) => &base[..scheme + 3 + slash],
            None => base,
        },
        None => base,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

pub async fn drop_database(server: &str, name: &str) -> Result<(), Error> {
    let store = Store::connect(server, 1).await?;
    let sql = format!("drop database if exists \"{name}\" with (force)");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(store.pool())
        .await?;
    store.pool().close().await;
    Ok(())
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}
