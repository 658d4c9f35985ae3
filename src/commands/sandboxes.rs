//! The MAP sandboxes of standalone mode: one per environment whose MAP is a local address,
//! on that address, with seeded leads and credentials made up for the occasion and handed to
//! the workers in-process (never written anywhere).

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use drover_map::Secret;
use drover_mapsim::{FaultProfile, RunningSandbox, SandboxConfig};
use drover_spec::environment::{Environment, SecretRef};

/// Started sandboxes and the secrets that open them, by the variable names the environment
/// files give.
pub(crate) struct Sandboxes {
    pub(crate) running: Vec<(String, RunningSandbox)>,
    pub(crate) secrets: HashMap<String, Secret>,
}

impl Sandboxes {
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

/// Start a sandbox for each environment with a local MAP address.
pub(crate) async fn start(envs: &[Environment], leads: usize) -> Result<Sandboxes> {
    let mut out = Sandboxes {
        running: Vec::new(),
        secrets: HashMap::new(),
    };
    for (i, env) in envs.iter().enumerate() {
        let Some(addr) = local_address(env) else {
            continue;
        };
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
        let sandbox = drover_mapsim::start(config, addr).await.with_context(|| {
            format!(
                "cannot start the MAP sandbox of environment `{}` on {addr} (is the port taken?)",
                env.name
            )
        })?;
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
