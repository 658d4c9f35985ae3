//! `drover users …`: users, passwords, roles and API tokens.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use drover_engine::ops::{Action, parse_role, role_name};
use drover_web::auth::{hash_password, issue_api_token};

use super::Ctx;
use crate::cli::UsersCommand;

/// A password from stdin (first line), or a new random one to print once.
fn password(from_stdin: bool) -> Result<(String, bool)> {
    if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the password from stdin")?;
        let line = text.lines().next().unwrap_or_default().to_owned();
        return Ok((line, false));
    }
    Ok((generate_password(), true))
}

/// 20 characters from an unambiguous alphabet, from the OS random source.
pub(crate) fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: refuse to make a guessable password.
        return String::new();
    }
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

pub(crate) async fn run(ctx: &Ctx, cmd: UsersCommand) -> Result<ExitCode> {
    let store = ctx.store(2).await?;
    // Anyone may make a token for themselves; everything else is for admins.
    let needs = match &cmd {
        UsersCommand::Token { name, .. } if *name == ctx.actor => Action::View,
        _ => Action::ManageUsers,
    };
    let actor = ctx.authorize(&store, needs, None).await?;
    match cmd {
        UsersCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            let role = parse_role(&role)
                .map(role_name)
                .with_context(|| format!("`{role}` is not a role: viewer, operator or admin"))?;
            let (pw, generated) = password(password_stdin)?;
            let hash = hash_password(&pw)?;
            let mut tx = store.begin().await?;
            tx.create_user(&name, &hash, role).await?;
            tx.audit(
                &actor.name,
                "user.add",
                None,
                None,
                None,
                &serde_json::json!({ "user": name, "role": role }),
            )
            .await?;
            tx.commit().await?;
            println!("added {name} ({role})");
            if generated {
                println!("password: {pw}");
            }
        }
        UsersCommand::Passwd {
            name,
            password_stdin,
        } => {
            let (pw, generated) = password(password_stdin)?;
            let mut tx = store.begin().await?;
            tx.set_password(&name, &hash_password(&pw)?).await?;
            tx.audit(
                &actor.name,
                "user.password",
                None,
                None,
                None,
                &serde_json::json!({ "user": name }),
            )
            .await?;
            tx.commit().await?;
            println!("password of {name} changed; their sessions ended");
            if generated {
                println!("password: {pw}");
            }
        }
        UsersCommand::Role { name, role, env } => {
            let role =
                match (role.as_str(), &env) {
                    ("inherit", Some(_)) => None,
                    (r, _) => Some(parse_role(r).map(role_name).with_context(|| {
                        format!("`{r}` is not a role: viewer, operator or admin")
                    })?),
                };
            let mut tx = store.begin().await?;
            tx.set_role(&name, env.as_deref(), role).await?;
            tx.audit(
                &actor.name,
                "user.role",
                env.as_deref(),
                None,
                None,
                &serde_json::json!({ "user": name, "role": role }),
            )
            .await?;
            tx.commit().await?;
            match (&env, role) {
                (Some(e), Some(r)) => println!("{name} is {r} in {e}"),
                (Some(e), None) => println!("{name} has their overall role in {e}"),
                (None, r) => println!("{name} is {}", r.unwrap_or_default()),
            }
        }
        UsersCommand::Token { name, label } => {
            if name != actor.name && !actor.may(Action::ManageUsers, None) {
                bail!("only admins make tokens for others");
            }
            let mut tx = store.begin().await?;
            let (token, id) = issue_api_token(&mut tx, &name, &label).await?;
            tx.audit(
                &actor.name,
                "user.token.create",
                None,
                None,
                None,
                &serde_json::json!({ "user": name, "token_id": id, "label": label }),
            )
            .await?;
            tx.commit().await?;
            println!("{token}");
        }
        UsersCommand::List => {
            let users = store.users().await?;
            if users.is_empty() {
                println!("No users yet: `drover users add NAME --role admin`.");
            }
            for u in users {
                let per_env: Vec<String> = u
                    .environment_roles
                    .iter()
                    .map(|(e, r)| format!("{e}: {r}"))
                    .collect();
                println!(
                    "{:<24} {:<9} {}{}",
                    u.name,
                    u.role,
                    per_env.join(", "),
                    if u.disabled { "  (disabled)" } else { "" }
                );
            }
        }
        UsersCommand::Disable { name } => {
            set_disabled(&store, &actor.name, &name, true).await?;
            println!("{name} disabled");
        }
        UsersCommand::Enable { name } => {
            set_disabled(&store, &actor.name, &name, false).await?;
            println!("{name} enabled");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Disable or enable `name`, audited in the same transaction.
async fn set_disabled(
    store: &drover_store::Store,
    actor: &str,
    name: &str,
    disabled: bool,
) -> Result<()> {
    let mut tx = store.begin().await?;
    tx.set_disabled(name, disabled).await?;
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    tx.audit(
        actor,
        action,
        None,
        None,
        None,
        &serde_json::json!({ "user": name }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
