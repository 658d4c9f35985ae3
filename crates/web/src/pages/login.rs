//! Logging in and out. The login form is protected by a double-submit cookie; failed logins
//! are throttled per user name; every login and logout is in the audit trail.

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::WebState;
use crate::auth::{
    self, CsrfForm, LOGIN_COOKIE, PageUser, SESSION_COOKIE, random_token, same, set_cookie,
    token_hash, verify_password,
};
use crate::error::{Failure, PageError};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    next: &'a str,
    name: &'a str,
    error: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

/// Only a path on this site (never `//host` or a full URL) is a place to go after login.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/dags",
    }
}

fn render(page: &LoginPage<'_>, status: StatusCode, cookie: Option<String>) -> Response {
    match page.render() {
        Ok(body) => {
            let mut headers = HeaderMap::new();
            if let Some(c) = cookie.and_then(|c| c.parse().ok()) {
                headers.insert(header::SET_COOKIE, c);
            }
            (status, headers, Html(body)).into_response()
        }
        Err(e) => PageError(Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        ))
        .into_response(),
    }
}

pub(crate) async fn form(
    State(state): State<WebState>,
    Query(q): Query<NextQuery>,
    mut parts: Parts,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if let Ok(PageUser(_)) = PageUser::from_request_parts(&mut parts, &state).await {
        return Redirect::to(next).into_response();
    }
    let token = random_token();
    let page = LoginPage {
        csrf: &token,
        next,
        name: "",
        error: None,
    };
    render(
        &page,
        StatusCode::OK,
        Some(set_cookie(
            LOGIN_COOKIE,
            &token,
            3600,
            state.config().secure_cookies,
        )),
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

pub(crate) async fn submit(
    State(state): State<WebState>,
    parts: Parts,
    Form(f): Form<LoginForm>,
) -> Response {
    let connect = parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .cloned();
    let next = safe_next(Some(&f.next)).to_owned();
    let cookie_token = auth::cookie(&parts, LOGIN_COOKIE).unwrap_or_default();
    let fail = |status: StatusCode, message: &str| {
        let token = random_token();
        render(
            &LoginPage {
                csrf: &token,
                next: &next,
                name: &f.name,
                error: Some(message),
            },
            status,
            Some(set_cookie(
                LOGIN_COOKIE,
                &token,
                3600,
                state.config().secure_cookies,
            )),
        )
    };
    if cookie_token.is_empty() || !same(cookie_token, &f.csrf) {
        return fail(
            StatusCode::FORBIDDEN,
            "This login form has expired. Please try again.",
        );
    }
    match login(&state, &f.name, &f.password, connect.map(|c| c.0)).await {
        Ok(Outcome::LoggedIn(session)) => {
            let mut headers = HeaderMap::new();
            let ttl = state.config().session_ttl.as_secs() as i64;
            for c in [
                set_cookie(SESSION_COOKIE, &session, ttl, state.config().secure_cookies),
                set_cookie(LOGIN_COOKIE, "", 0, state.config().secure_cookies),
            ] {
                if let Ok(v) = c.parse() {
                    headers.append(header::SET_COOKIE, v);
                }
            }
            (headers, Redirect::to(&next)).into_response()
        }
        Ok(Outcome::Wrong) => fail(
            StatusCode::UNAUTHORIZED,
            "That user name and password do not match.",
        ),
        Ok(Outcome::Throttled) => fail(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed logins for this user. Wait 15 minutes, or ask an admin to reset the password.",
        ),
        Err(e) => PageError(e).into_response(),
    }
}

enum Outcome {
    LoggedIn(String),
    Wrong,
    Throttled,
}

async fn login(
    state: &WebState,
    name: &str,
    password: &str,
    client: Option<std::net::SocketAddr>,
) -> Result<Outcome, Failure> {
    let store = state.store();
    let client = client.map(|c| c.ip().to_string()).unwrap_or_default();
    let cfg = state.config();
    let name = name.trim();
    if store
        .recent_failed_logins(name, cfg.login_window.as_secs() as i64)
        .await?
        >= cfg.login_max_failures
    {
        return Ok(Outcome::Throttled);
    }
    let stored = store.password_hash(name).await?;
    let (password, known) = (password.to_owned(), stored.is_some());
    let stored = stored.unwrap_or_else(|| auth::password::decoy_hash().to_owned());
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &stored))
        .await
        .unwrap_or(false)
        && known;
    store.record_login_attempt(name, &client, matches).await?;
    if !matches {
        return Ok(Outcome::Wrong);
    }
    let session = random_token();
    store
        .create_session(
            &token_hash(&session),
            name,
            &random_token(),
            cfg.session_ttl.as_secs() as i64,
        )
        .await?;
    store
        .audit(
            name,
            "user.login",
            None,
            None,
            None,
            &serde_json::json!({ "client": client }),
        )
        .await?;
    Ok(Outcome::LoggedIn(session))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Empty {}

pub(crate) async fn logout(
    State(state): State<WebState>,
    parts: Parts,
    form: CsrfForm<Empty>,
) -> Result<Response, PageError> {
    if let Some(token) = auth::cookie(&parts, SESSION_COOKIE) {
        state.store().delete_session(&token_hash(token)).await?;
    }
    state
        .store()
        .audit(
            form.user.name(),
            "user.logout",
            None,
            None,
            None,
            &serde_json::json!({}),
        )
        .await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = set_cookie(SESSION_COOKIE, "", 0, state.config().secure_cookies).parse() {
        headers.insert(header::SET_COOKIE, v);
    }
    Ok((headers, Redirect::to("/login")).into_response())
}
