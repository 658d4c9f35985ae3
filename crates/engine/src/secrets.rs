//! Secrets read where an environment file says (`{ env: VARIABLE }` or `{ file: PATH }`), by
//! the process that needs them, when it needs them. Errors name the place, never the value.

use std::collections::HashMap;
use std::sync::Arc;

use drover_map::Secret;
use drover_spec::environment::{Environment, SecretRef, secret_variable};
use drover_spec::suggest::closest;

/// Where `{ env: NAME }` secrets come from: values this process was handed (standalone mode
/// makes up its sandboxes' credentials and passes them in-process), else the process
/// environment. `{ file: PATH }` secrets are read from the file (trimmed).
#[derive(Debug, Clone, Default)]
pub struct SecretSource {
    provided: Arc<HashMap<String, Secret>>,
}

/// Why a secret could not be read: which place, never what it holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretUnavailable {
    #[error("the variable {0}, which is not set for this worker")]
    Unset(String),
    #[error("{path}, which cannot be read: {reason}")]
    Unreadable { path: String, reason: String },
}

impl SecretSource {
    /// Secrets from the process environment and files only.
    pub fn new() -> Self {
        Self::default()
    }

    /// `{ env: NAME }` secrets from `provided` where it has them.
    pub fn with_provided(provided: HashMap<String, Secret>) -> Self {
        Self {
            provided: Arc::new(provided),
        }
    }

    /// The values handed to this process.
    pub fn provided(&self) -> &HashMap<String, Secret> {
        &self.provided
    }

    /// The secret at `at`.
    pub fn read(&self, at: &SecretRef) -> Result<Secret, SecretUnavailable> {
        match at {
            SecretRef::Env(var) => match self.provided.get(var) {
                Some(s) => Ok(s.clone()),
                None => std::env::var(var)
                    .map(Secret::new)
                    .map_err(|_| SecretUnavailable::Unset(var.clone())),
            },
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim()))
                .map_err(|e| SecretUnavailable::Unreadable {
                    path: path.clone(),
                    reason: e.kind().to_string(),
                }),
        }
    }

    /// The secrets task `task` names, from its own environment's file: (variable, value) for
    /// each. An error (not worth a retry: the files or this worker's settings must change)
    /// says which name or place is missing.
    pub fn for_task(
        &self,
        task: &str,
        names: &[String],
        env: &Environment,
    ) -> Result<Vec<(String, Secret)>, String> {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let Some(at) = env.secrets.get(name) else {
                let hint = closest(name, env.secrets.keys().map(String::as_str))
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                return Err(format!(
                    "task `{task}` names secret `{name}`, which environment `{}` does not define{hint}",
                    env.name
                ));
            };
            let value = self.read(at).map_err(|why| {
                format!(
                    "secret `{name}` of environment `{}` comes from {why}",
                    env.name
                )
            })?;
            out.push((secret_variable(name), value));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        let src = "name: dev\norder: 1\nbranch: main\nmap:\n  kind: marketo\n  base_url: http://127.0.0.1:1\n  client_id: { env: X }\n  client_secret: { env: Y }\nsecrets:\n  crm_token: { env: DROVER_TEST_UNSET_CRM_TOKEN }\n  ftp_key: { file: /nonexistent/drover/ftp }\n  given: { env: DROVER_TEST_GIVEN }\n";
        drover_spec::environment::load_environment("environments/dev.yaml", src)
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn a_task_gets_what_it_names_or_a_reason_without_the_value() {
        let source = SecretSource::with_provided(HashMap::from([(
            "DROVER_TEST_GIVEN".to_owned(),
            Secret::new("v4lue"),
        )]));
        let got = source.for_task("t", &["given".to_owned()], &env());
        let got = got.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].0.as_str(), got[0].1.expose()), ("GIVEN", "v4lue"));
        assert_eq!(
            source.for_task("x", &["crm_tokn".to_owned()], &env()),
            Err("task `x` names secret `crm_tokn`, which environment `dev` does not define; did you mean `crm_token`?".to_owned())
        );
        assert_eq!(
            source.for_task("x", &["crm_token".to_owned()], &env()),
            Err("secret `crm_token` of environment `dev` comes from the variable DROVER_TEST_UNSET_CRM_TOKEN, which is not set for this worker".to_owned())
        );
        let err = source
            .for_task("x", &["ftp_key".to_owned()], &env())
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("secret `ftp_key` of environment `dev` comes from /nonexistent/drover/ftp, which cannot be read"),
            "{err}"
        );
    }
}
