//! Standalone's form-fill demo: DEV's MAP sandbox POSTs each form fill to the `form` webhook
//! of the `contact_sales` DAG on standalone's own web server, with the bearer token DEV's file
//! names (`secrets: { contact_sales_hook: { env: VARIABLE } }`), as a Marketo trigger campaign
//! "Fills Out Form → Call Webhook" would. The token is the variable's value when it is set,
//! else one made up on the first start and kept in the home folder (owner-only) for the next;
//! it is handed to the web server in-process and never printed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use drover_map::Secret;
use drover_mapsim::WebhookTarget;
use drover_spec::environment::{Environment, SecretRef};

use super::sandboxes::Sandboxes;

/// The DAG the sandbox's fills go to.
pub(crate) const DAG: &str = "contact_sales";
/// Its webhook trigger.
pub(crate) const HOOK: &str = "form";
/// The secret of the environment that trigger names.
pub(crate) const SECRET: &str = "contact_sales_hook";

/// DEV's fills wired to its hook: which environment, and where its token comes from.
pub(crate) struct FormHook {
    env: String,
    token: Secret,
    /// The file it is kept in, or the variable it was read from.
    kept_in: String,
    /// DEV's sandbox, where fills are posted.
    sandbox: String,
}

impl FormHook {
    /// For the lowest environment with a running sandbox whose file declares the secret as
    /// `{ env: VARIABLE }`: its token (from the variable, or made up and kept under `home`),
    /// handed to `sandboxes` so the web server reads it as that variable. `None` when no
    /// environment qualifies (a repository without the demo, or a secret in a file).
    pub(crate) fn prepare(
        home: &Path,
        environments: &[Environment],
        sandboxes: &mut Sandboxes,
    ) -> Result<Option<Self>> {
        let mut sandboxed: Vec<&Environment> = environments
            .iter()
            .filter(|e| sandboxes.running.iter().any(|(name, _)| *name == e.name))
            .collect();
        sandboxed.sort_by_key(|e| e.order);
        let Some(env) = sandboxed.first() else {
            return Ok(None);
        };
        let Some(SecretRef::Env(var)) = env.secrets.get(SECRET) else {
            return Ok(None);
        };
        let Some(sandbox) = sandboxes
            .running
            .iter()
            .find(|(name, _)| *name == env.name)
            .map(|(_, s)| s.base_url())
        else {
            return Ok(None);
        };
        let (token, kept_in) = match std::env::var(var) {
            Ok(value) if !value.trim().is_empty() => (value.trim().to_owned(), format!("${var}")),
            _ => {
                let file = kept_file(home, &env.name);
                (kept_or_made(&file)?, file.display().to_string())
            }
        };
        let token = Secret::new(token);
        sandboxes.secrets.insert(var.clone(), token.clone());
        Ok(Some(Self {
            env: env.name.clone(),
            token,
            kept_in,
            sandbox,
        }))
    }

    /// The hook's address on the web server at `web` (an unspecified listen address is
    /// reached on loopback).
    pub(crate) fn url(&self, web: std::net::SocketAddr) -> String {
        let host = if web.ip().is_unspecified() {
            std::net::SocketAddr::from(([127, 0, 0, 1], web.port()))
        } else {
            web
        };
        format!("http://{host}/hooks/{}/{DAG}/{HOOK}", self.env)
    }

    /// Points the environment's sandbox at the hook on `web`.
    pub(crate) fn connect(&self, sandboxes: &Sandboxes, web: std::net::SocketAddr) -> Result<()> {
        let target = WebhookTarget::new(&self.url(web))
            .and_then(|t| t.with_bearer(self.token.expose()))
            .map_err(|e| anyhow::anyhow!("the form-fill webhook of `{}`: {e}", self.env))?;
        if let Some((_, sandbox)) = sandboxes.running.iter().find(|(n, _)| *n == self.env) {
            sandbox.set_webhook(Some(target));
        }
        Ok(())
    }

    /// What the banner says: how to fill the form, and where the fill goes (no token).
    pub(crate) fn banner(&self, web: std::net::SocketAddr) -> String {
        format!(
            "Fill the form:        curl -X POST {}/_sandbox/forms/fill -H 'Content-Type: application/json' -d '{{\"email\": \"ann@example.com\", \"country\": \"US\", \"title\": \"VP Marketing\"}}'\n\
             \x20                     each fill is POSTed to {} ({DAG} in {}; the bearer token is in {})\n",
            self.sandbox,
            self.url(web),
            self.env,
            self.kept_in
        )
    }
}

/// Where the made-up token of `env` is kept.
fn kept_file(home: &Path, env: &str) -> PathBuf {
    home.join("hooks").join(format!("{env}-{SECRET}"))
}

/// The token kept in `file`, or a new one written there (owner-only).
fn kept_or_made(file: &Path) -> Result<String> {
    if let Ok(kept) = std::fs::read_to_string(file)
        && !kept.trim().is_empty()
    {
        return Ok(kept.trim().to_owned());
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for the webhook token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_private(file, &token).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(token)
}

/// Writes `text` to a file only its owner may read, created so from the start.
fn write_private(file: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)?;
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_up_token_is_kept_owner_only_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = kept_file(home.path(), "dev");
        let first = kept_or_made(&file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.len(), 48);
        let mode = std::fs::metadata(&file)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_default();
        assert_eq!(mode, 0o600);
        assert_eq!(kept_or_made(&file).ok(), Some(first.clone()));
        std::fs::write(&file, "").unwrap_or_else(|e| panic!("{e}"));
        let fresh = kept_or_made(&file).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(fresh, first, "an emptied file gets a new token");
    }
}
