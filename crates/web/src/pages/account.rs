//! Your account: roles, API tokens (shown once when made), password change.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use drover_store::ApiTokenRow;
use serde::Deserialize;

use super::{Chrome, back};
use crate::WebState;
use crate::auth::{self, CsrfForm, PageUser};
use crate::error::{Failure, PageError};

#[derive(Template, WebTemplate)]
#[template(path = "account.html")]
pub(crate) struct AccountPage {
    chrome: Chrome,
    env_roles: Vec<(String, &'static str)>,
    tokens: Vec<ApiTokenRow>,
    new_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DoneQuery {
    done: Option<String>,
}

async fn render(
    state: &WebState,
    user: &crate::auth::CurrentUser,
    done: Option<&str>,
    new_token: Option<String>,
) -> Result<AccountPage, PageError> {
    let tokens = state.store().api_tokens(Some(user.name())).await?;
    Ok(AccountPage {
        chrome: Chrome::new(user, "account", None).with_done(done),
        env_roles: user
            .actor
            .environment_roles
            .iter()
            .map(|(e, r)| (e.clone(), drover_engine::ops::role_name(*r)))
            .collect(),
        tokens,
        new_token,
    })
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Query(q): Query<DoneQuery>,
) -> Result<AccountPage, PageError> {
    render(&state, &user, q.done.as_deref(), None).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    #[serde(default)]
    label: String,
}

/// Make a token and show it once (the page is not cached).
pub(crate) async fn create_token(
    State(state): State<WebState>,
    form: CsrfForm<TokenForm>,
) -> Result<Response, PageError> {
    let label = Some(form.form.label.trim())
        .filter(|l| !l.is_empty())
        .unwrap_or("api");
    let mut tx = state.store().begin().await?;
    let (token, id) = auth::issue_api_token(&mut tx, form.user.name(), label).await?;
    tx.audit(
        form.user.name(),
        "user.token.create",
        None,
        None,
        None,
        &serde_json::json!({ "token_id": id, "label": label }),
    )
    .await?;
    tx.commit().await?;
    let page = render(&state, &form.user, Some("token"), Some(token)).await?;
    Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], page).into_response())
}

pub(crate) async fn revoke_token(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    form: CsrfForm<super::login::Empty>,
) -> Result<Redirect, PageError> {
    let own = state
        .store()
        .api_tokens(Some(form.user.name()))
        .await?
        .into_iter()
        .any(|t| t.id == id);
    if !own
        && !form
            .user
            .actor
            .may(drover_engine::ops::Action::ManageUsers, None)
    {
        return Err(Failure::forbidden("You can revoke only your own tokens.").into());
    }
    let mut tx = state.store().begin().await?;
    if !tx.revoke_api_token(id).await? {
        return Err(Failure::not_found("No live token with that id.").into());
    }
    tx.audit(
        form.user.name(),
        "user.token.revoke",
        None,
        None,
        None,
        &serde_json::json!({ "token_id": id }),
    )
    .await?;
    tx.commit().await?;
    Ok(back("/account", "revoked"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PasswordForm {
    current: String,
    new: String,
}

pub(crate) async fn change_password(
    State(state): State<WebState>,
    form: CsrfForm<PasswordForm>,
) -> Result<Redirect, PageError> {
    let stored = state
        .store()
        .password_hash(form.user.name())
        .await?
        .unwrap_or_default();
    let (current, new) = (form.form.current, form.form.new);
    let ok = state
        .hashing()
        .run(move || auth::verify_password(&current, &stored).then(|| auth::hash_password(&new)))
        .await?;
    let hash = match ok {
        None => return Err(Failure::forbidden("The current password is not right.").into()),
        Some(Err(e)) => return Err(Failure::bad_request(e.to_string()).into()),
        Some(Ok(h)) => h,
    };
    let mut tx = state.store().begin().await?;
    tx.set_password(form.user.name(), &hash).await?;
    tx.audit(
        form.user.name(),
        "user.password",
        None,
        None,
        None,
        &serde_json::json!({ "user": form.user.name() }),
    )
    .await?;
    tx.commit().await?;
    // Changing the password ends every session, this one too.
    Ok(Redirect::to("/login"))
}
