//! `drover mapsim`: the MAP sandbox as a process of its own.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result};
use drover_mapsim::{FaultProfile, Limits, SandboxConfig, WebhookTarget, format_every};

use crate::cli::MapsimArgs;

pub(crate) async fn run(args: MapsimArgs) -> Result<ExitCode> {
    let stop = super::serve::shutdown_signal();
    let faults: FaultProfile = args
        .faults
        .parse()
        .map_err(|e| anyhow::anyhow!("--faults: {e}"))?;
    let webhook = webhook(&args)?;
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
        webhook: webhook.clone(),
        form_fills_every: args.form_fills_every,
        ..SandboxConfig::default()
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let sandbox = drover_mapsim::start(config, addr)
        .await
        .with_context(|| format!("cannot start the MAP sandbox on {addr}"))?;
    println!("MAP sandbox listening on {}", sandbox.base_url());
    println!(
        "{}",
        form_fills_line(webhook.as_ref(), args.form_fills_every)
    );
    sandbox.serve_until(stop).await;
    Ok(ExitCode::SUCCESS)
}

/// The webhook the flags describe (its secrets read, never shown).
fn webhook(args: &MapsimArgs) -> Result<Option<WebhookTarget>> {
    let Some(url) = &args.webhook else {
        return Ok(None);
    };
    let mut target = WebhookTarget::new(url).map_err(|e| anyhow::anyhow!("--webhook: {e}"))?;
    let token = match (&args.webhook_token, &args.webhook_token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(file)) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("--webhook-token-file: cannot read {}", file.display()))?,
        ),
        (None, None) => None,
    };
    if let Some(t) = token {
        target = target
            .with_bearer(t)
            .map_err(|e| anyhow::anyhow!("--webhook-token: {e}"))?;
    }
    let secret = match (&args.webhook_hmac_secret, &args.webhook_hmac_secret_file) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file).with_context(|| {
                format!("--webhook-hmac-secret-file: cannot read {}", file.display())
            })?;
            Some(text.trim_end_matches(['\n', '\r']).to_owned())
        }
        (None, None) => None,
    };
    if let Some(s) = secret {
        target = target
            .with_hmac_secret(s)
            .map_err(|e| anyhow::anyhow!("--webhook-hmac-secret: {e}"))?;
    }
    Ok(Some(target))
}

/// What happens to form fills, in one line (no secret in it).
fn form_fills_line(webhook: Option<&WebhookTarget>, every: Option<std::time::Duration>) -> String {
    let timer = match every {
        Some(d) => format!("a made-up form fill every {}", format_every(d)),
        None => "form fills only when asked (POST /_sandbox/forms/fill)".to_owned(),
    };
    match webhook {
        Some(t) => {
            let proofs = match (t.has_bearer(), t.is_signed()) {
                (true, true) => " with a bearer token and an HMAC signature",
                (true, false) => " with a bearer token",
                (false, true) => " with an HMAC signature",
                (false, false) => "",
            };
            format!("{timer}, each POSTed to {}{proofs}", t.url())
        }
        None => format!("{timer}, sent to no webhook (PUT /_sandbox/webhooks sets one)"),
    }
}
