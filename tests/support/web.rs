//! Talking to `drover web` as a browser would (cookies by hand, redirects not followed) and
//! as an API client would (bearer tokens).
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};

use super::{Drover, Proc};

/// A free local port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// A client whose connections come from `local` (any 127.x.y.z address reaches a server on
/// 127.0.0.1, so tests can be several clients to per-address limits).
pub fn client_from(local: std::net::IpAddr) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .local_address(local)
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// Wait until GET `url` answers 2xx, or fail the test after `within`.
pub async fn wait_until_ok(url: &str, within: Duration) {
    let c = client();
    crate::support::eventually(&format!("{url} to answer"), within, || async {
        let r = c.get(url).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
}

/// `drover web` on a free port, answering `/healthz`; returns the process and base URL.
pub async fn start_web(d: &Drover<'_>, extra: &[&str]) -> (Proc, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["web", "--listen", listen.as_str()];
    args.extend_from_slice(extra);
    let proc = d.spawn("web", &args);
    let base = format!("http://{listen}");
    // On failure the process's log is shown as it is dropped.
    wait_until_ok(&format!("{base}/healthz"), Duration::from_secs(30)).await;
    (proc, base)
}

/// Add a user with `role`; returns the generated password.
pub fn add_user(d: &Drover<'_>, name: &str, role: &str) -> String {
    let out = d.ok(&["users", "add", name, "--role", role, "--as", "admin"]);
    out.lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no password printed: {out}"))
        .to_owned()
}

/// An API token for `name`.
pub fn token(d: &Drover<'_>, name: &str) -> String {
    d.ok(&["users", "token", name, "--as", "admin"])
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The value of `name="…"` hidden input or `data-csrf` in a page.
pub fn csrf_in(html: &str) -> String {
    for marker in ["data-csrf=\"", "name=\"_csrf\" value=\""] {
        if let Some(rest) = html.split(marker).nth(1)
            && let Some(v) = rest.split('"').next()
            && !v.is_empty()
        {
            return v.to_owned();
        }
    }
    panic!(
        "no CSRF token in the page: {}",
        &html[..html.len().min(400)]
    )
}

/// A logged-in browser session.
pub struct Session {
    pub base: String,
    pub cookie: String,
    pub csrf: String,
    pub client: reqwest::Client,
}

/// What a form post or page load answered.
pub struct Answer {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status();
    let location = r
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = r.text().await.unwrap_or_default();
    Answer {
        status,
        location,
        body,
    }
}

/// Log in through the login form; panics unless it works.
pub async fn login(base: &str, name: &str, password: &str) -> Session {
    match try_login(base, name, password).await {
        Ok(s) => s,
        Err(a) => panic!("login as {name} failed: {} {}", a.status, a.body),
    }
}

/// Log in through the login form: the session, or the page that refused.
pub async fn try_login(base: &str, name: &str, password: &str) -> Result<Session, Answer> {
    try_login_with(client(), base, name, password).await
}

/// Log in through the login form with the client `c` (e.g. one from another address).
pub async fn try_login_with(
    c: reqwest::Client,
    base: &str,
    name: &str,
    password: &str,
) -> Result<Session, Answer> {
    let page = c
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let login_cookie =
        cookie_value(page.headers(), "drover_login").unwrap_or_else(|| panic!("no login cookie"));
    let html = page.text().await.unwrap_or_default();
    let csrf = csrf_in(&html);
    let r = c
        .post(format!("{base}/login"))
        .header(COOKIE, format!("drover_login={login_cookie}"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("next", "/dags"),
            ("name", name),
            ("password", password),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(session) = cookie_value(r.headers(), "drover_session") else {
        return Err(answer(r).await);
    };
    let cookie = format!("drover_session={session}");
    let dags = c
        .get(format!("{base}/account"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let html = dags.text().await.unwrap_or_default();
    Ok(Session {
        base: base.to_owned(),
        csrf: csrf_in(&html),
        cookie,
        client: c,
    })
}

impl Session {
    pub async fn get(&self, path: &str) -> Answer {
        answer(
            self.client
                .get(format!("{}{path}", self.base))
                .header(COOKIE, &self.cookie)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {path}: {e}")),
        )
        .await
    }

    /// Post a form with the session's CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut all = vec![("_csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Post a form exactly as given (no CSRF token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        answer(
            self.client
                .post(format!("{}{path}", self.base))
                .header(COOKIE, &self.cookie)
                .form(fields)
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST {path}: {e}")),
        )
        .await
    }

    /// A JSON API call made with the session cookie (and the CSRF header when `csrf`).
    pub async fn api(&self, path: &str, body: serde_json::Value, csrf: bool) -> Answer {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .json(&body);
        if csrf {
            req = req.header("X-CSRF-Token", &self.csrf);
        }
        answer(
            req.send()
                .await
                .unwrap_or_else(|e| panic!("POST {path}: {e}")),
        )
        .await
    }
}

/// An API call with a bearer token (none: unauthenticated).
pub async fn api(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> Answer {
    let mut req = client().request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    answer(req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"))).await
}

/// Sending a request and reading its JSON answer, failing the test on any error.
pub trait JsonAnswer {
    async fn json_answer(self) -> serde_json::Value;
}

impl JsonAnswer for reqwest::RequestBuilder {
    async fn json_answer(self) -> serde_json::Value {
        self.send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("not JSON: {e}"))
    }
}
