//! `drover mapsim`: the MAP sandbox as a process of its own.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result};
use drover_mapsim::{FaultProfile, Limits, SandboxConfig};

use crate::cli::MapsimArgs;

pub(crate) async fn run(args: MapsimArgs) -> Result<ExitCode> {
    let stop = super::serve::shutdown_signal();
    let faults: FaultProfile = args
        .faults
        .parse()
        .map_err(|e| anyhow::anyhow!("--faults: {e}"))?;
    let config = SandboxConfig {
        leads: args.leads,
        seed: args.seed,
        client_id: args.client_id,
        client_secret: args.client_secret,
        faults,
        limits: if args.no_limits {
            Limits::off()
        } else {
            Limits::default()
        },
        ..SandboxConfig::default()
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let sandbox = drover_mapsim::start(config, addr)
        .await
        .with_context(|| format!("cannot start the MAP sandbox on {addr}"))?;
    println!("MAP sandbox listening on {}", sandbox.base_url());
    sandbox.serve_until(stop).await;
    Ok(ExitCode::SUCCESS)
}
