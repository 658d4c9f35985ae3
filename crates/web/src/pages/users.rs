//! Users and roles (admins only): add, change roles overall or per environment, disable.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use drover_engine::ops::{Action, parse_role};
use drover_store::UserRow;
use serde::Deserialize;

use super::{Chrome, back};
use crate::WebState;
use crate::auth::{self, CsrfForm, CurrentUser, PageUser};
use crate::error::{Failure, PageError};

fn admin_only(user: &CurrentUser) -> Result<(), Failure> {
    user.actor
        .check(Action::ManageUsers, None)
        .map_err(Failure::forbidden)
}

#[derive(Template, WebTemplate)]
#[template(path = "users.html")]
pub(crate) struct UsersPage {
    chrome: Chrome,
    users: Vec<UserRow>,
    envs: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DoneQuery {
    done: Option<String>,
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Query(q): Query<DoneQuery>,
) -> Result<UsersPage, PageError> {
    admin_only(&user)?;
    let envs = state.environments().await?;
    Ok(UsersPage {
        chrome: Chrome::new(&user, "users", None).with_done(q.done.as_deref()),
        users: state.store().users().await?,
        envs: envs.iter().map(|e| e.name.clone()).collect(),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct AddForm {
    name: String,
    role: String,
    password: String,
}

pub(crate) async fn add(
    State(state): State<WebState>,
    form: CsrfForm<AddForm>,
) -> Result<Redirect, PageError> {
    admin_only(&form.user)?;
    let f = form.form;
    let role = parse_role(&f.role)
        .map(drover_engine::ops::role_name)
        .ok_or_else(|| Failure::bad_request("the role must be viewer, operator or admin"))?;
    let password = f.password;
    let hash = state
        .hashing()
        .run(move || auth::hash_password(&password))
        .await?
        .map_err(|e| Failure::bad_request(e.to_string()))?;
    let mut tx = state.store().begin().await?;
    tx.create_user(f.name.trim(), &hash, role).await?;
    tx.audit(
        form.user.name(),
        "user.add",
        None,
        None,
        None,
        &serde_json::json!({ "user": f.name.trim(), "role": role }),
    )
    .await?;
    tx.commit().await?;
    Ok(back("/admin/users", "user"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RoleForm {
    role: String,
    #[serde(default)]
    env: String,
}

pub(crate) async fn set_role(
    State(state): State<WebState>,
    Path(name): Path<String>,
    form: CsrfForm<RoleForm>,
) -> Result<Redirect, PageError> {
    admin_only(&form.user)?;
    let f = form.form;
    let env = Some(f.env.as_str()).filter(|e| !e.is_empty());
    let role = match f.role.as_str() {
        "" | "inherit" if env.is_some() => None,
        r => Some(
            parse_role(r)
                .map(drover_engine::ops::role_name)
                .ok_or_else(|| {
                    Failure::bad_request("the role must be viewer, operator or admin")
                })?,
        ),
    };
    let mut tx = state.store().begin().await?;
    tx.set_role(&name, env, role).await?;
    tx.audit(
        form.user.name(),
        "user.role",
        env,
        None,
        None,
        &serde_json::json!({ "user": name, "role": role }),
    )
    .await?;
    tx.commit().await?;
    Ok(back("/admin/users", "user"))
}

async fn set_disabled(
    state: &WebState,
    name: &str,
    form: CsrfForm<super::login::Empty>,
    disabled: bool,
) -> Result<Redirect, PageError> {
    admin_only(&form.user)?;
    if disabled && name == form.user.name() {
        return Err(Failure::bad_request("You cannot disable yourself.").into());
    }
    let mut tx = state.store().begin().await?;
    tx.set_disabled(name, disabled).await?;
    tx.audit(
        form.user.name(),
        if disabled {
            "user.disable"
        } else {
            "user.enable"
        },
        None,
        None,
        None,
        &serde_json::json!({ "user": name }),
    )
    .await?;
    tx.commit().await?;
    Ok(back("/admin/users", "user"))
}

pub(crate) async fn disable(
    State(state): State<WebState>,
    Path(name): Path<String>,
    form: CsrfForm<super::login::Empty>,
) -> Result<Redirect, PageError> {
    set_disabled(&state, &name, form, true).await
}

pub(crate) async fn enable(
    State(state): State<WebState>,
    Path(name): Path<String>,
    form: CsrfForm<super::login::Empty>,
) -> Result<Redirect, PageError> {
    set_disabled(&state, &name, form, false).await
}
