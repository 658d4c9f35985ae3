//! Who is asking: a browser session (cookie) or an API token (`Authorization: Bearer`), with
//! their roles; CSRF checks on every state-changing form and on cookie-authenticated API
//! writes.

pub(crate) mod login_limits;
pub mod password;
mod secret_token;

use std::sync::Arc;

use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use drover_engine::ops::{Actor, parse_role};
use drover_spec::environment::Role;
use drover_store::UserRow;
use serde::de::DeserializeOwned;

pub use password::{MIN_LEN, PasswordError, hash_password, verify_password};
pub use secret_token::issue_api_token;
pub(crate) use secret_token::{random_token, same, token_hash};

use crate::WebState;
use crate::error::{ApiError, Failure, PageError};

pub(crate) const SESSION_COOKIE: &str = "drover_session";
/// Double-submit cookie protecting the login form itself.
pub(crate) const LOGIN_COOKIE: &str = "drover_login";
/// The header carrying the CSRF token on API writes made with a session cookie.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// The actor with the roles a stored user has (an unreadable role counts as viewer).
pub fn actor_of(user: &UserRow) -> Actor {
    Actor {
        name: user.name.clone(),
        role: parse_role(&user.role).unwrap_or(Role::Viewer),
        environment_roles: user
            .environment_roles
            .iter()
            .map(|(env, r)| (env.clone(), parse_role(r).unwrap_or(Role::Viewer)))
            .collect(),
    }
}

/// The person behind a request.
#[derive(Debug, Clone)]
pub(crate) struct CurrentUser {
    pub(crate) actor: Actor,
    /// The session's CSRF token (none when authenticated by API token).
    pub(crate) csrf: Option<String>,
    /// Maintenance in force when the request came, for the pages' banner.
    pub(crate) maintenance: Arc<Option<drover_store::Maintenance>>,
}

impl CurrentUser {
    pub(crate) fn name(&self) -> &str {
        &self.actor.name
    }

    pub(crate) fn csrf(&self) -> &str {
        self.csrf.as_deref().unwrap_or_default()
    }
}

/// The value of cookie `name`.
pub(crate) fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

async fn authenticate(parts: &Parts, state: &WebState) -> Result<Option<CurrentUser>, Failure> {
    let found = if let Some(token) = bearer(parts) {
        state.store().token_user(&token_hash(token)).await?
    } else if let Some(token) = cookie(parts, SESSION_COOKIE) {
        state.store().session_user(&token_hash(token)).await?
    } else {
        None
    };
    let Some(a) = found else {
        return Ok(None);
    };
    Ok(Some(CurrentUser {
        actor: actor_of(&a.user),
        csrf: a.csrf_token,
        maintenance: state.maintenance().await?,
    }))
}

/// A logged-in user of a page; anyone else is sent to the login page (and back after).
#[derive(Debug, Clone)]
pub(crate) struct PageUser(pub(crate) CurrentUser);

impl FromRequestParts<WebState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        match authenticate(parts, state).await {
            Ok(Some(user)) => Ok(PageUser(user)),
            Ok(None) => {
                let here = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let next = if parts.method == Method::GET {
                    here
                } else {
                    "/"
                };
                Err(
                    Redirect::to(&format!("/login?next={}", crate::views::url_encode(next)))
                        .into_response(),
                )
            }
            Err(f) => Err(PageError(f).into_response()),
        }
    }
}

/// A user of the JSON API: a token, or a session cookie plus the CSRF header on writes.
#[derive(Debug, Clone)]
pub(crate) struct ApiUser(pub(crate) CurrentUser);

impl FromRequestParts<WebState> for ApiUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        let user = match authenticate(parts, state).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                return Err(ApiError(Failure::new(
                    StatusCode::UNAUTHORIZED,
                    "log in or send an API token: Authorization: Bearer <token>",
                ))
                .into_response());
            }
            Err(f) => return Err(ApiError(f).into_response()),
        };
        let writes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if writes && let Some(expected) = &user.csrf {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !same(expected, sent) {
                return Err(ApiError(Failure::forbidden(
                    "a request authenticated by a session cookie must carry the session's X-CSRF-Token header",
                ))
                .into_response());
            }
        }
        Ok(ApiUser(user))
    }
}

#[derive(serde::Deserialize)]
struct WithCsrf<T> {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(flatten)]
    inner: T,
}

/// A submitted form of a logged-in user whose `_csrf` field matches their session.
#[derive(Debug)]
pub(crate) struct CsrfForm<T> {
    pub(crate) user: CurrentUser,
    pub(crate) form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<WebState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &WebState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let PageUser(user) = PageUser::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let Form(WithCsrf { csrf, inner }) = Form::<WithCsrf<T>>::from_request(req, state)
            .await
            .map_err(|e| PageError(Failure::bad_request(e.body_text())).into_response())?;
        match &user.csrf {
            Some(expected) if same(expected, &csrf) => Ok(CsrfForm { user, form: inner }),
            _ => Err(PageError(Failure::forbidden(
                "This form has expired or did not come from Drover. Reload the page and try again.",
            ))
            .into_response()),
        }
    }
}

/// `Set-Cookie` value for a cookie only this site's pages send back.
pub(crate) fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}
