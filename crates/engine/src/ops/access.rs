//! Who may do what: roles (`viewer` < `operator` < `admin`), optionally different per
//! environment, checked the same way for the web UI, the JSON API and the CLI.

use std::collections::BTreeMap;

use drover_spec::environment::{Environment, Role};

/// Something a person asks Drover to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read run history, logs, datasets, environments.
    View,
    /// Trigger a run (with params).
    Trigger,
    /// Pause or unpause a DAG.
    Pause,
    /// Clear tasks so they run again.
    Clear,
    /// Mark a run succeeded or failed.
    Mark,
    /// Revert what a return wrote to the MAP.
    Revert,
    /// Promote into an environment, or roll it back.
    Promote,
    /// Approve or reject a promotion waiting for a second person.
    Approve,
    /// Approve or reject the plan of a return waiting for approval (`returns:
    /// { require_approval: true }`); approving also needs not to be the DAG's last committer,
    /// unless an admin.
    ApproveReturn,
    /// Send recorded events through their DAG again (a replay).
    Replay,
    /// Add users, change roles, issue tokens for others.
    ManageUsers,
    /// Turn maintenance mode on or off.
    Maintenance,
}

impl Action {
    pub fn describe(self) -> &'static str {
        match self {
            Action::View => "view",
            Action::Trigger => "trigger runs",
            Action::Pause => "pause or unpause DAGs",
            Action::Clear => "clear tasks",
            Action::Mark => "mark runs",
            Action::Revert => "revert returns",
            Action::Promote => "promote or roll back",
            Action::Approve => "approve promotions",
            Action::ApproveReturn => "approve or reject returns",
            Action::Replay => "replay events",
            Action::ManageUsers => "manage users",
            Action::Maintenance => "turn maintenance on or off",
        }
    }
}

/// A person acting, with their roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
    /// Roles that replace `role` in one environment.
    pub environment_roles: BTreeMap<String, Role>,
}

impl Actor {
    /// Someone with `role` everywhere.
    pub fn with_role(name: impl Into<String>, role: Role) -> Self {
        Self {
            name: name.into(),
            role,
            environment_roles: BTreeMap::new(),
        }
    }

    /// The role that holds in `environment` (the overall role outside any environment).
    pub fn role_in(&self, environment: Option<&str>) -> Role {
        environment
            .and_then(|e| self.environment_roles.get(e).copied())
            .unwrap_or(self.role)
    }

    /// Whether the actor may do `action` in `environment` (none: not tied to one).
    pub fn may(&self, action: Action, environment: Option<&Environment>) -> bool {
        let role = self.role_in(environment.map(|e| e.name.as_str()));
        match action {
            Action::View => true,
            Action::Trigger
            | Action::Pause
            | Action::Clear
            | Action::Mark
            | Action::Revert
            | Action::ApproveReturn
            | Action::Replay => role >= Role::Operator,
            Action::Promote => match environment {
                Some(env) => env.promotion.allowed_roles.contains(&role),
                None => role >= Role::Operator,
            },
            Action::Approve => role == Role::Admin,
            Action::ManageUsers | Action::Maintenance => self.role == Role::Admin,
        }
    }

    /// Whether the actor may see the values of `env`'s rows — staged data, receipts, record
    /// history, event payloads — which may hold personal data: the environment's
    /// `rows_visible_to` names the least role that may.
    pub fn sees_rows(&self, env: &Environment) -> bool {
        self.role_in(Some(&env.name)) >= env.rows_visible_to
    }

    /// `Ok` if allowed, else a message saying who may.
    pub fn check(&self, action: Action, environment: Option<&Environment>) -> Result<(), String> {
        if self.may(action, environment) {
            return Ok(());
        }
        let role = self.role_in(environment.map(|e| e.name.as_str()));
        let needed = match action {
            Action::Promote => environment
                .map(|e| {
                    e.promotion
                        .allowed_roles
                        .iter()
                        .map(|r| role_name(*r))
                        .collect::<Vec<_>>()
                        .join(" or ")
                })
                .unwrap_or_else(|| "operator".to_owned()),
            Action::Approve | Action::ManageUsers | Action::Maintenance => "admin".to_owned(),
            _ => "operator or admin".to_owned(),
        };
        Err(format!(
            "{} is a {} {}and may not {}: that needs {}",
            self.name,
            role_name(role),
            environment
                .map(|e| format!("in `{}` ", e.name))
                .unwrap_or_default(),
            action.describe(),
            needed
        ))
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

pub fn parse_role(text: &str) -> Option<Role> {
    match text {
        "viewer" => Some(Role::Viewer),
        "operator" => Some(Role::Operator),
        "admin" => Some(Role::Admin),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str, promoters: Vec<Role>) -> Environment {
        let mut e: Environment = serde_json::from_value(serde_json::json!({
            "name": name, "order": 1,
            "map": {"kind": "marketo", "base_url": "http://127.0.0.1:1",
                    "client_id": {"env": "X"}, "client_secret": {"env": "Y"}}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        e.promotion.allowed_roles = promoters;
        e
    }

    #[test]
    fn roles_grow_in_power_and_can_differ_per_environment() {
        let dev = env("dev", vec![Role::Operator, Role::Admin]);
        let prod = env("prod", vec![Role::Admin]);
        let mut op = Actor::with_role("olga", Role::Operator);
        op.environment_roles.insert("prod".into(), Role::Viewer);
        assert!(op.may(Action::Trigger, Some(&dev)));
        assert!(!op.may(Action::Trigger, Some(&prod)));
        assert!(op.may(Action::View, Some(&prod)));
        assert!(op.may(Action::Promote, Some(&dev)));
        assert!(!op.may(Action::Approve, Some(&dev)));
        let viewer = Actor::with_role("vic", Role::Viewer);
        for a in [
            Action::Trigger,
            Action::Pause,
            Action::Clear,
            Action::Mark,
            Action::Revert,
            Action::Replay,
        ] {
            assert!(!viewer.may(a, Some(&dev)), "{a:?}");
        }
        let admin = Actor::with_role("ada", Role::Admin);
        assert!(admin.may(Action::Promote, Some(&prod)));
        assert!(admin.may(Action::ManageUsers, None));
        let msg = op
            .check(Action::Promote, Some(&prod))
            .err()
            .unwrap_or_default();
        assert_eq!(
            msg,
            "olga is a viewer in `prod` and may not promote or roll back: that needs admin"
        );
    }
}
