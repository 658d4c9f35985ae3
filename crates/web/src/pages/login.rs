//! Logging in and out. The login form is protected by a double-submit cookie; attempts are
//! limited per client address, failed logins throttled per user name, and passwords checked
//! by a few hashing threads behind a short queue (so a flood cannot hold memory without
//! bound); every login and logout is in the audit trail.

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
/// Browsers drop tabs and line breaks from a URL and read `\\` as `/`, so `/\t/host` or
/// `/\\host` would leave the site: a `next` with any control character, backslash, or an
/// encoded one of those, goes to the DAG list instead.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if on_site(n) => n,
        _ => "/dags",
    }
}

fn on_site(next: &str) -> bool {
    let plain = |p: &str| {
        p.starts_with('/')
            && !p.starts_with("//")
            && !p.chars().any(|c| c.is_control() || c == '\\')
    };
    // The same once percent-decoded: `/%09/host` must not become `/\t/host` further on.
    let decoded = crate::text_check::percent_decode(next.as_bytes());
    plain(next) && std::str::from_utf8(&decoded).is_ok_and(plain)
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
    let peer = connect.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
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
    if let Err(wait) = state
        .login_clients()
        .attempt(peer, std::time::Instant::now())
    {
        let mut res = fail(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many login attempts from your address. Wait a minute and try again.",
        );
        let secs = wait.as_secs().max(1);
        if let Ok(v) = secs.to_string().parse() {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return res;
    }
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
        Ok(Outcome::Busy) => {
            let mut res = fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "Drover is busy checking other logins. Try again in a moment.",
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            res
        }
        Err(e) => PageError(e).into_response(),
    }
}

enum Outcome {
    LoggedIn(String),
    Wrong,
    Throttled,
    /// Every hashing thread is busy and the queue is full.
    Busy,
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
    // A turn at the password checks first: a login refused for lack of one costs nothing.
    let Ok(_turn) = state.hashing().admit() else {
        return Ok(Outcome::Busy);
    };
    if store
        .recent_failed_logins(name, cfg.login_window.as_secs() as i64)
        .await?
        >= cfg.login_max_failures
    {
        return Ok(Outcome::Throttled);
    }
    let stored = store.password_hash(name).await?;
    let (password, known) = (password.to_owned(), stored.is_some());
    // An unknown name is checked against a decoy hash: it costs the same time and the same
    // place in the queue as a known one.
    let checked = state
        .hashing()
        .run(move || match stored {
            Some(hash) => verify_password(&password, &hash),
            None => verify_password(&password, auth::password::decoy_hash()),
        })
        .await;
    let matches = match checked {
        Ok(m) => m && known,
        Err(crate::auth::login_limits::HashRefused::Busy) => return Ok(Outcome::Busy),
        Err(e) => return Err(e.into()),
    };
    store.record_login_attempt(name, &client, matches).await?;
    if !matches {
        return Ok(Outcome::Wrong);
    }
    let session = random_token();
    // The session and its audit event commit together: a login that cannot be audited
    // leaves no session behind.
    let mut tx = store.begin().await?;
    tx.create_session(
        &token_hash(&session),
        name,
        &random_token(),
        cfg.session_ttl.as_secs() as i64,
    )
    .await?;
    tx.audit(
        name,
        "user.login",
        None,
        None,
        None,
        &serde_json::json!({ "client": client }),
    )
    .await?;
    tx.commit().await?;
    Ok(Outcome::LoggedIn(session))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Empty {}

pub(crate) async fn logout(
    State(state): State<WebState>,
    parts: Parts,
    form: CsrfForm<Empty>,
) -> Result<Response, PageError> {
    // The session ends with its audit event, or not at all.
    let mut tx = state.store().begin().await?;
    if let Some(token) = auth::cookie(&parts, SESSION_COOKIE) {
        tx.delete_session(&token_hash(token)).await?;
    }
    tx.audit(
        form.user.name(),
        "user.logout",
        None,
        None,
        None,
        &serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = set_cookie(SESSION_COOKIE, "", 0, state.config().secure_cookies).parse() {
        headers.insert(header::SET_COOKIE, v);
    }
    Ok((headers, Redirect::to("/login")).into_response())
}
