//! `drover standalone`: everything in one process tree on this machine, for trying Drover and
//! for development: a private Postgres cluster (unless DATABASE_URL is given), the scheduler
//! and a worker, reading this repository's DAGs and environments.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use drover_engine::{Scheduler, SchedulerConfig, Worker, WorkerConfig};
use drover_store::embedded::{EmbeddedPostgres, free_port};
use tokio::sync::watch;

use super::Ctx;
use crate::cli::{Folders, StandaloneArgs};

fn step(started: Instant, what: &str) {
    eprintln!("[{:>5.1}s] {what}", started.elapsed().as_secs_f64());
}

/// The embedded cluster's port: the one it used last time, so URLs stay stable.
fn port_for(home: &std::path::Path) -> Result<u16> {
    let file = home.join("postgres.port");
    if let Some(port) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|p| p.trim().parse().ok())
    {
        return Ok(port);
    }
    let port = free_port()?;
    std::fs::create_dir_all(home).with_context(|| format!("cannot create {}", home.display()))?;
    std::fs::write(&file, port.to_string())
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(port)
}

pub(crate) async fn run(ctx: &Ctx, folders: &Folders, args: StandaloneArgs) -> Result<ExitCode> {
    let started = Instant::now();
    // Ctrl-C while it starts is kept, and stops it cleanly (Postgres too) once it is up.
    let stop = super::serve::shutdown_signal();
    let home = std::path::absolute(&args.home).context("cannot resolve the Drover home folder")?;
    let mut cluster = None;
    let url = if let Some(url) = &ctx.database_url {
        step(started, "using the Postgres at DATABASE_URL");
        url.clone()
    } else {
        let port = port_for(&home)?;
        step(
            started,
            &format!(
                "starting Drover's own Postgres in {} (port {port})",
                home.join("postgres").display()
            ),
        );
        let pg = tokio::task::spawn_blocking({
            let dir = home.join("postgres");
            move || -> Result<EmbeddedPostgres> {
                let pg = EmbeddedPostgres::new(&dir, port)?;
                if !pg.is_running() {
                    pg.start()?;
                }
                Ok(pg)
            }
        })
        .await??;
        let url = pg.url("drover");
        cluster = Some(pg);
        url
    };
    let ctx = Ctx {
        database_url: Some(url.clone()),
        actor: ctx.actor.clone(),
    };
    let result = serve(&ctx, folders, &args, &home, started, stop).await;
    if let Some(pg) = cluster {
        step(started, "stopping Postgres");
        tokio::task::spawn_blocking(move || pg.stop()).await??;
    }
    result?;
    step(started, "stopped");
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    ctx: &Ctx,
    folders: &Folders,
    args: &StandaloneArgs,
    home: &std::path::Path,
    started: Instant,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    step(started, "preparing the database");
    let store = ctx.store(8).await?;
    let (source, checkout) = dag_source(folders, &args.home)?;
    step(started, "reading DAGs and environments");
    let report = source.sync(&store).await?;
    for p in &report.problems {
        eprintln!("{p}\n");
    }
    let git = match &source {
        drover_engine::DagSource::Git(git) => Some(git.clone()),
        drover_engine::DagSource::Folder(_) => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    };
    let scheduler = Scheduler::new(
        store.clone(),
        SchedulerConfig {
            source: Some(source),
            sync_every: Duration::from_secs(args.sync_secs.max(1)),
            ..SchedulerConfig::default()
        },
    );
    let environments: Vec<drover_spec::environment::Environment> = store
        .environments()
        .await?
        .into_iter()
        .filter_map(|e| serde_json::from_value(e.spec).ok())
        .collect();
    step(
        started,
        "starting a MAP sandbox for each environment with a local MAP address",
    );
    let mut sandboxes =
        super::sandboxes::start_at(&environments, args.sandbox_leads, args.sandbox_port_base)
            .await?;
    for line in sandboxes.describe() {
        eprintln!("         {line}");
    }
    // Before the data plane takes the sandboxes' secrets: the hook's token is one of them.
    let form_hook = super::form_hook::FormHook::prepare(home, &environments, &mut sandboxes)?;
    let plane = sandboxes.open(
        drover_engine::data::DataPlane::connect(
            &store,
            u32::try_from(args.concurrency).unwrap_or(8) + 2,
        )
        .await?,
    );
    let scheduler = scheduler.with_data(plane.clone());
    let worker_store = ctx
        .store(u32::try_from(args.concurrency).unwrap_or(8) + 4)
        .await?;
    let mut config = WorkerConfig::new(
        format!("standalone-{}", std::process::id()),
        args.concurrency,
    );
    config.grace = Duration::from_secs(10);
    let worker = tokio::spawn(
        Worker::new(worker_store, config)
            .with_data(plane.clone())
            .run(stopped(stop_rx.clone())),
    );
    step(started, "starting the web UI");
    // The web server reads with connections of its own, so a busy UI never delays the
    // scheduler, as with separate processes.
    let web_store = ctx.store(8).await?;
    let login = admin_login(&web_store, &args.home).await?;
    let web_state = super::web::state(&web_store, git.clone(), &args.web, Some(plane)).await?;
    let listener = tokio::net::TcpListener::bind(&args.web.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (set --listen or DROVER_WEB_LISTEN)",
                args.web.listen
            )
        })?;
    let web_addr = listener.local_addr()?;
    if let Some(hook) = &form_hook {
        hook.connect(&sandboxes, web_addr)?;
    }
    // Only once everything above started: a first start that failed leaves QA, STAGE and
    // PROD unpinned, to start at the commit DEV runs when a start succeeds.
    if let Some(git) = &git {
        start_undeployed(git, &store, &report.environments).await?;
    }
    let notifier = drover_engine::Notifier::new(store.clone(), Some(format!("http://{web_addr}")))?;
    let scheduler = tokio::spawn(
        scheduler
            .with_notifier(notifier)
            .run(stopped(stop_rx.clone())),
    );
    let web = tokio::spawn(drover_web::serve(listener, web_state, stopped(stop_rx)));
    let pruner = super::web::prune_sessions(web_store.clone());
    // A DAG deployed to several environments is one DAG: count distinct ids, not pairs.
    let dags = store
        .dag_envs(None)
        .await?
        .into_iter()
        .map(|de| de.dag_id)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let cli_file = crate::config_file::write_standalone(home, ctx.database_url()?, "admin")?;
    step(started, "Drover is running");
    let banner = format!(
        "\nDrover is running: {} in {}.\n\
         Web UI:               http://{web_addr}\n\
         Log in as:            {}\n\
         The CLI:              {}\n\
         Elsewhere:            export DATABASE_URL={}\n{}\
         then:                 drover runs list    drover env status    drover runs trigger <DAG> --env dev\n{}\
         Press Ctrl-C to stop.\n",
        counted(dags, "DAG", "DAGs"),
        counted(report.environments.len(), "environment", "environments"),
        login,
        cli_words(home, &cli_file),
        redact(ctx.database_url()?),
        checkout
            .map(|root| format!(
                "                      export DROVER_REPO={}   (for drover env promote / diff / rollback)\n",
                root.display()
            ))
            .unwrap_or_default(),
        form_hook
            .as_ref()
            .map(|h| h.banner(web_addr))
            .unwrap_or_default()
    );
    {
        use std::io::Write;
        // Whoever started Drover may stop reading its output: that must not stop Drover.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    stop.await;
    step(started, "stopping: letting running tasks finish");
    let _ = stop_tx.send(true);
    pruner.abort();
    web.await.context("web task")??;
    scheduler.await.context("scheduler task")??;
    worker.await.context("worker task")??;
    sandboxes.shutdown().await;
    Ok(())
}

/// Where standalone reads DAGs: the repository `--repo` names; else, when the DAGs folder is
/// in a git checkout on a branch, that checkout, with DEV following the branch it is on; else
/// the folder as it is on disk, for every environment.
/// Also the checkout's root, when it is one.
fn dag_source(
    folders: &Folders,
    home: &std::path::Path,
) -> Result<(drover_engine::DagSource, Option<std::path::PathBuf>)> {
    if folders.repo.is_some() {
        return Ok((super::dag_source(folders)?, None));
    }
    let checkout = drover_repo::checkout_of(&folders.dags_dir).with_context(|| {
        format!(
            "cannot read the git checkout of {}",
            folders.dags_dir.display()
        )
    })?;
    let Some(drover_repo::Checkout {
        root,
        subdir,
        branch: Some(branch),
        uncommitted,
    }) = checkout
    else {
        eprintln!(
            "         {} is not on a git branch: every environment runs it as it is on disk",
            folders.dags_dir.display()
        );
        return Ok((super::dag_source(folders)?, None));
    };
    eprintln!(
        "         DAGs from the git checkout {}: DEV follows the branch `{branch}`, the \
         environments above it run what is promoted into them",
        root.display()
    );
    if !uncommitted.is_empty() {
        eprintln!(
            "         not committed, so not in DEV until you commit: {}",
            uncommitted.join(", ")
        );
    }
    let git = drover_engine::GitSource::open(
        &root.display().to_string(),
        &subdir,
        &home.join("repos"),
        folders.environments_dir.clone(),
    )
    .with_context(|| format!("cannot open the DAG repository {}", root.display()))?
    .with_max_dag_bytes(folders.max_dag_bytes.0)
    .tracking(Some(branch));
    Ok((drover_engine::DagSource::Git(git), Some(root)))
}

/// On first start from a checkout, the environments above DEV that have never run anything
/// (and name no starting `commit:`) start at the commit DEV runs, so the demo runs every
/// environment; later commits reach them only by promotion. Recorded in the audit trail.
async fn start_undeployed(
    git: &drover_engine::GitSource,
    store: &drover_store::Store,
    environments: &[drover_spec::environment::Environment],
) -> Result<()> {
    let Some(tracking) = environments.iter().find(|e| e.branch.is_some()) else {
        return Ok(());
    };
    let Some(dev) = store.current_deployment(&tracking.name).await? else {
        return Ok(());
    };
    for env in environments
        .iter()
        .filter(|e| e.branch.is_none() && e.commit.is_none())
    {
        if store.current_deployment(&env.name).await?.is_some() {
            continue;
        }
        let plan = git.plan(store, &env.name, &dev.commit_sha).await?;
        git.apply(
            store,
            env,
            &plan,
            &drover_engine::Deploy {
                kind: "promote",
                actor: "standalone",
                approved_by: None,
                note: Some("first start: every environment begins at the commit DEV runs"),
            },
        )
        .await?;
    }
    Ok(())
}

/// The admin login to print: made (with a generated password, kept in the home folder for
/// the next start) when the database has no users yet.
async fn admin_login(store: &drover_store::Store, home: &std::path::Path) -> Result<String> {
    let file = home.join("admin-password");
    if store.count_users().await? == 0 {
        let password = super::users::generate_password();
        let hash = drover_web::auth::hash_password(&password)?;
        store.create_user("admin", &hash, "admin").await?;
        std::fs::create_dir_all(home)
            .with_context(|| format!("cannot create {}", home.display()))?;
        std::fs::write(&file, &password)
            .with_context(|| format!("cannot write {}", file.display()))?;
        restrict(&file);
        return Ok(format!("admin / {password}"));
    }
    // The kept password, while it still is admin's (it may have been changed since).
    let kept = std::fs::read_to_string(&file).unwrap_or_default();
    let hash = store.password_hash("admin").await?.unwrap_or_default();
    let kept = kept.trim().to_owned();
    let still = {
        let kept = kept.clone();
        tokio::task::spawn_blocking(move || drover_web::auth::verify_password(&kept, &hash))
            .await
            .unwrap_or(false)
    };
    if still {
        return Ok(format!("admin / {kept}"));
    }
    Ok(
        "an existing user (`drover users list`; `drover users passwd NAME` sets a new password)"
            .to_owned(),
    )
}

/// Only the owner may read the password file.
fn restrict(file: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600));
}

/// A URL fit to print: any password replaced.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if url[s + 3..at].contains(':') => {
            let user = &url[s + 3..at]
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// "1 DAG", "4 DAGs".
fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Where the CLI finds what standalone wrote for it: commands run in the folder that holds
/// the home (when it is a `.drover` folder), or with DROVER_HOME naming it.
fn cli_words(home: &std::path::Path, file: &std::path::Path) -> String {
    let default_name = home
        .file_name()
        .is_some_and(|n| n == crate::config_file::STANDALONE_HOME);
    match home.parent() {
        Some(dir) if default_name => format!(
            "drover commands run in {} use this database as admin, no DATABASE_URL or --as needed ({})",
            dir.display(),
            file.display()
        ),
        _ => format!(
            "with DROVER_HOME={}, drover commands use this database as admin ({})",
            home.display(),
            file.display()
        ),
    }
}
