//! The MAP sandboxes of standalone mode: one per environment whose MAP is a local address,
//! on that address (or, when it is taken, on a free port, which the workers are told), with
//! seeded leads and credentials made up for the occasion and handed to the workers
//! in-process (never written anywhere).

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use drover_engine::data::DataPlane;
use drover_map::Secret;
use drover_mapsim::{FaultProfile, RunningSandbox, SandboxConfig, SandboxError};
use drover_spec::environment::{Environment, SecretRef};

/// Started sandboxes and the secrets that open them, by the variable names the environment
/// files give.
pub(crate) struct Sandboxes {
    pub(crate) running: Vec<(String, RunningSandbox)>,
    pub(crate) secrets: HashMap<String, Secret>,
    /// Environment → (the address its file names, the one its sandbox has instead), for
    /// those not where their file says.
    pub(crate) moved: HashMap<String, (String, String)>,
}

impl Sandboxes {
    /// `plane`, its MAP clients opening these sandboxes: their credentials, at the
    /// addresses they really have.
    pub(crate) fn open(&self, plane: DataPlane) -> DataPlane {
        let addresses = self
            .moved
            .iter()
            .map(|(env, (_, actual))| (env.clone(), actual.clone()))
            .collect();
        plane
            .with_provided_secrets(self.secrets.clone())
            .with_map_addresses(addresses)
    }

    /// One line per sandbox: where it is, and where its file said when that differs.
    pub(crate) fn describe(&self) -> Vec<String> {
        self.running
            .iter()
            .map(|(env, s)| match self.moved.get(env) {
                Some((configured, _)) => format!(
                    "{env}: MAP sandbox at {} (its file says {configured})",
                    s.base_url()
                ),
                None => format!("{env}: MAP sandbox at {}", s.base_url()),
            })
            .collect()
    }

    pub(crate) async fn shutdown(self) {
        for (_, s) in self.running {
            s.shutdown().await;
        }
    }
}

/// The local address of an environment's MAP, if it has one (`http://127.0.0.1:PORT`).
pub(crate) fn local_address(env: &Environment) -> Option<SocketAddr> {
    let rest = env.map.base_url.strip_prefix("http://")?;
    let host_port = rest.trim_end_matches('/');
    let (host, port) = host_port.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    match host {
        "127.0.0.1" | "localhost" => Some(SocketAddr::from(([127, 0, 0, 1], port))),
        _ => None,
    }
}

/// Start a sandbox for each environment with a local MAP address, on that address (a free
/// port when it is taken): [`start_at`] without a port base.
#[allow(dead_code)]
pub(crate) async fn start(envs: &[Environment], leads: usize) -> Result<Sandboxes> {
    start_at(envs, leads, None).await
}

/// Start a sandbox for each environment with a local MAP address: on `port_base`, the next
/// port, … in the environments' order when given, else on the address the file names; on a
/// free port when that one is taken (said on stderr).
pub(crate) async fn start_at(
    envs: &[Environment],
    leads: usize,
    port_base: Option<u16>,
) -> Result<Sandboxes> {
    let mut out = Sandboxes {
        running: Vec::new(),
        secrets: HashMap::new(),
        moved: HashMap::new(),
    };
    let mut local = 0u16;
    for (i, env) in envs.iter().enumerate() {
        let Some(configured) = local_address(env) else {
            continue;
        };
        let wanted = match port_base {
            Some(base) => SocketAddr::from((
                [127, 0, 0, 1],
                base.checked_add(local).with_context(|| {
                    format!(
                        "--sandbox-port-base {base} leaves no port for `{}`",
                        env.name
                    )
                })?,
            )),
            None => configured,
        };
        local += 1;
        let client_id = format!("drover-{}", env.name);
        let client_secret = uuid::Uuid::new_v4().simple().to_string();
        let config = SandboxConfig {
            leads,
            seed: 42 + i as u64,
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            faults: FaultProfile::default(),
            ..SandboxConfig::default()
        };
        let sandbox = match drover_mapsim::start(config.clone(), wanted).await {
            Err(SandboxError::Bind { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                let free = SocketAddr::from(([127, 0, 0, 1], 0));
                let sandbox = drover_mapsim::start(config, free).await.with_context(|| {
                    format!("cannot start the MAP sandbox of environment `{}`", env.name)
                })?;
                let why = if source.kind() == std::io::ErrorKind::AddrInUse {
                    "is taken (by another program?)"
                } else {
                    "is not open to this user"
                };
                eprintln!(
                    "         {}: port {} {why}: its MAP sandbox uses {} instead",
                    env.name,
                    wanted.port(),
                    sandbox.base_url()
                );
                sandbox
            }
            other => other.with_context(|| {
                format!(
                    "cannot start the MAP sandbox of environment `{}` on {wanted}",
                    env.name
                )
            })?,
        };
        if sandbox.base_url() != format!("http://{configured}") {
            out.moved.insert(
                env.name.clone(),
                (env.map.base_url.clone(), sandbox.base_url()),
            );
        }
        for (at, value) in [
            (&env.map.client_id, client_id),
            (&env.map.client_secret, client_secret),
        ] {
            if let SecretRef::Env(var) = at {
                out.secrets.insert(var.clone(), Secret::new(value));
            }
        }
        out.running.push((env.name.clone(), sandbox));
    }
    Ok(out)
}
