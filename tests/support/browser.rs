//! A minimal W3C WebDriver client for end-to-end browser tests: drives Debian's headless
//! Chromium (`/usr/bin/chromium`) through chromedriver (`/usr/bin/chromedriver`); run
//! `scripts/ensure-chromium` to install both.
//!
//! Every [`Browser`] starts a chromedriver of its own on a free loopback port, with one
//! session and a throwaway profile directory. Dropping it ends the session and kills
//! chromedriver and every process it started, so a test leaves nothing running even when
//! it panics. Methods panic with a descriptive message on any WebDriver error: a failing
//! browser step is a failing test.
//!
//! ```ignore
//! let browser = Browser::start().await;
//! browser.goto(&format!("{base}/login")).await;
//! browser.find("#user").await.type_text("admin").await;
//! browser.find("button[type=submit]").await.click().await;
//! browser.wait_for_text("h1", "Dashboard", Duration::from_secs(5)).await;
//! ```
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

/// Where `scripts/ensure-chromium` installs the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Where `scripts/ensure-chromium` installs the driver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long [`Browser::find`] waits for an element to appear.
pub const FIND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Browser::start`] waits for chromedriver to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Interval between two polls of the `wait_*` helpers.
const POLL: Duration = Duration::from_millis(200);
/// The W3C key of a web element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium with one WebDriver session, driven by a chromedriver of its own.
///
/// Dropping it deletes the session and kills chromedriver and all its descendants.
#[derive(Debug)]
pub struct Browser {
    session: Session,
    /// Declared before `profile` so the browser is gone before its profile is deleted.
    driver: Driver,
    profile: tempfile::TempDir,
}

/// One element of the page, as found by [`Browser::find`] or [`Browser::find_all`].
///
/// It refers to a DOM node: once the page replaces that node, using it panics with a
/// "stale element reference" error; find the element again instead.
#[derive(Debug, Clone)]
pub struct Element {
    session: Session,
    id: String,
}

/// An error answered by chromedriver (or a failure to reach it).
#[derive(Debug, Clone)]
pub struct WebDriverError {
    /// The W3C error code (`no such element`, `stale element reference`, ...), or
    /// `transport` when chromedriver could not be reached.
    pub error: String,
    /// Chromedriver's message.
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = self.message.lines().next().unwrap_or("");
        write!(f, "{}: {message}", self.error)
    }
}

/// The endpoint of one session: cheap to clone, shared by the browser and its elements.
#[derive(Debug, Clone)]
struct Session {
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    url: String,
}

impl Session {
    /// Sends one command (`path` is relative to the session URL) and returns its `value`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        request(&self.client, method, &format!("{}{path}", self.url), body).await
    }

    /// Like [`Session::call`], but panics with `what` and the error.
    async fn must(&self, what: &str, method: Method, path: &str, body: Option<Value>) -> Value {
        self.call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("browser: {what} failed: {e}"))
    }

    async fn find_now(&self, css: &str) -> Result<Element, WebDriverError> {
        let value = self
            .call(
                Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(self.element(&value))
    }

    fn element(&self, reference: &Value) -> Element {
        let id = reference
            .get(ELEMENT_KEY)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("browser: not an element reference: {reference}"));
        Element {
            session: self.clone(),
            id: id.to_owned(),
        }
    }

    async fn execute(&self, js: &str, args: &[Value]) -> Result<Value, WebDriverError> {
        self.call(
            Method::POST,
            "/execute/sync",
            Some(json!({"script": js, "args": args})),
        )
        .await
    }

    async fn page_text(&self) -> String {
        match self
            .execute("return document.body ? document.body.innerText : '';", &[])
            .await
        {
            Ok(Value::String(text)) => text,
            Ok(other) => other.to_string(),
            Err(e) => format!("<could not read the page: {e}>"),
        }
    }

    async fn current_url(&self) -> Result<String, WebDriverError> {
        Ok(as_string(self.call(Method::GET, "/url", None).await?))
    }
}

/// Sends one WebDriver request to an absolute URL and returns the answer's `value`.
async fn request(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, WebDriverError> {
    let transport = |e: reqwest::Error| WebDriverError {
        error: "transport".to_owned(),
        message: format!("{method} {url}: {e}"),
    };
    let mut req = client.request(method.clone(), url);
    // W3C wants a JSON body on every POST, even an empty one.
    if let Some(body) = body.or_else(|| (method == Method::POST).then(|| json!({}))) {
        req = req.json(&body);
    }
    let response = req.send().await.map_err(transport)?;
    let status = response.status();
    let mut answer: Value = response.json().await.map_err(transport)?;
    let value = answer
        .get_mut("value")
        .map(Value::take)
        .unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(value);
    }
    let field = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    Err(WebDriverError {
        error: match field("error") {
            e if e.is_empty() => format!("HTTP {status}"),
            e => e,
        },
        message: field("message"),
    })
}

fn as_string(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn first_chars(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a session on a fresh headless
    /// Chromium with a throwaway profile.
    ///
    /// Panics if Chromium or chromedriver is not installed (see `scripts/ensure-chromium`),
    /// if chromedriver is not ready within 20 s, or if the browser cannot start.
    pub async fn start() -> Browser {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "browser tests need {binary}: run scripts/ensure-chromium to install Debian's \
                 chromium and chromium-driver packages"
            );
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_else(|e| panic!("browser: cannot build an HTTP client: {e}"));
        let profile = tempfile::Builder::new()
            .prefix("drover-chromium-")
            .tempdir()
            .unwrap_or_else(|e| panic!("browser: cannot create a profile directory: {e}"));

        // Another process may take the port between our probe and chromedriver's bind:
        // chromedriver then exits, and we try another port.
        let mut attempt = 0;
        let driver = loop {
            attempt += 1;
            let mut driver = Driver::spawn();
            match driver.wait_ready(&client).await {
                Ok(()) => break driver,
                Err(e) if attempt < 3 && e.contains("exited") => continue,
                Err(e) => panic!("browser: chromedriver on port {}: {e}", driver.port),
            }
        };

        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "pageLoadStrategy": "normal",
            "timeouts": {"implicit": 0, "pageLoad": 30_000, "script": 30_000},
        }}});
        let base = format!("http://127.0.0.1:{}", driver.port);
        let created = request(
            &client,
            Method::POST,
            &format!("{base}/session"),
            Some(capabilities),
        )
        .await
        .unwrap_or_else(|e| panic!("browser: chromedriver could not start {CHROMIUM}: {e}"));
        let id = created
            .get("sessionId")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("browser: new session answer without sessionId: {created}"));
        let session = Session {
            client,
            url: format!("{base}/session/{id}"),
        };
        Browser {
            session,
            driver,
            profile,
        }
    }

    /// The loopback port chromedriver listens on.
    pub fn port(&self) -> u16 {
        self.driver.port
    }

    /// The pid of chromedriver, which is also the id of the process group holding it and
    /// the browser.
    pub fn driver_pid(&self) -> u32 {
        self.driver.child.id()
    }

    /// The browser's throwaway profile directory (`--user-data-dir`).
    pub fn profile_dir(&self) -> &Path {
        self.profile.path()
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.session
            .must(
                &format!("goto {url}"),
                Method::POST,
                "/url",
                Some(json!({"url": url})),
            )
            .await;
    }

    /// The URL of the current page.
    pub async fn current_url(&self) -> String {
        self.session
            .current_url()
            .await
            .unwrap_or_else(|e| panic!("browser: reading the current URL failed: {e}"))
    }

    /// The title of the current page.
    pub async fn title(&self) -> String {
        as_string(
            self.session
                .must("reading the title", Method::GET, "/title", None)
                .await,
        )
    }

    /// The first element matching the CSS selector `css`, waiting up to 10 s for it to
    /// appear. Panics with the selector, the current URL and the page's text if it does
    /// not.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + FIND_TIMEOUT;
        loop {
            match self.session.find_now(css).await {
                Ok(element) => return element,
                Err(e) if e.error == "no such element" && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) if e.error == "no such element" => {
                    let url = self
                        .session
                        .current_url()
                        .await
                        .unwrap_or_else(|e| format!("<{e}>"));
                    let text = self.session.page_text().await;
                    panic!(
                        "browser: no element matches {css:?} after {FIND_TIMEOUT:?} on {url}\n\
                         --- page text ---\n{}",
                        first_chars(&text, 2000)
                    );
                }
                Err(e) => panic!("browser: finding {css:?} failed: {e}"),
            }
        }
    }

    /// Every element matching the CSS selector `css` now, in document order (no wait).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self
            .session
            .must(
                &format!("finding all {css:?}"),
                Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found
            .as_array()
            .map(|refs| refs.iter().map(|r| self.session.element(r)).collect())
            .unwrap_or_default()
    }

    /// Whether an element matches the CSS selector `css` now (no wait).
    pub async fn exists(&self, css: &str) -> bool {
        !self.find_all(css).await.is_empty()
    }

    /// The rendered text of the whole page (`document.body.innerText`).
    pub async fn page_text(&self) -> String {
        as_string(
            self.execute("return document.body ? document.body.innerText : '';", &[])
                .await,
        )
    }

    /// Polls every 200 ms until the first element matching `css` has a text containing
    /// `needle`, and returns that text. Panics on timeout with the last text seen.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            // Find the element anew each time: the page may have replaced it.
            let seen = match self.session.find_now(css).await {
                Ok(element) => element.try_text().await,
                Err(e) => Err(e),
            };
            match seen {
                Ok(text) if text.contains(needle) => return text,
                _ if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                Ok(text) => panic!(
                    "browser: the text of {css:?} did not contain {needle:?} within {timeout:?}; \
                     last seen: {:?}",
                    first_chars(&text, 2000)
                ),
                Err(e) => panic!(
                    "browser: the text of {css:?} did not contain {needle:?} within {timeout:?}; \
                     last attempt: {e}"
                ),
            }
        }
    }

    /// Polls every 200 ms until the current URL contains `needle`, and returns it.
    pub async fn wait_for_url(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_url_matching(
            &format!("contain {needle:?}"),
            |url| url.contains(needle),
            timeout,
        )
        .await
    }

    /// Polls every 200 ms until `pred` accepts the current URL, and returns it. `what`
    /// describes the expectation in the panic message ("end with /runs").
    pub async fn wait_for_url_matching(
        &self,
        what: &str,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let url = self.current_url().await;
            if pred(&url) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "browser: the URL did not {what} within {timeout:?}; last seen: {url}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs `js` as the body of a function in the page (`arguments` holds `args`; pass
    /// elements with [`Element::as_arg`]) and returns what it `return`s. Panics if the
    /// script throws.
    pub async fn execute(&self, js: &str, args: &[Value]) -> Value {
        self.session
            .execute(js, args)
            .await
            .unwrap_or_else(|e| panic!("browser: script failed: {e}\n--- script ---\n{js}"))
    }

    /// Saves a PNG screenshot of the viewport to `path`.
    pub async fn screenshot(&self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        let encoded = self
            .session
            .must("taking a screenshot", Method::GET, "/screenshot", None)
            .await;
        let png = base64_decode(encoded.as_str().unwrap_or(""))
            .unwrap_or_else(|e| panic!("browser: screenshot is not base64: {e}"));
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("browser: writing {}: {e}", path.display()));
    }

    /// The cookies visible to the current page, as W3C cookie objects (`name`, `value`,
    /// `path`, `domain`, `secure`, `httpOnly`, `expiry`, `sameSite`).
    pub async fn cookies(&self) -> Vec<Value> {
        match self
            .session
            .must("reading cookies", Method::GET, "/cookie", None)
            .await
        {
            Value::Array(cookies) => cookies,
            _ => Vec::new(),
        }
    }

    /// Sets a cookie for the current page's domain, on path `/`.
    pub async fn add_cookie(&self, name: &str, value: &str) {
        let cookie = json!({"cookie": {"name": name, "value": value, "path": "/"}});
        self.session
            .must(
                &format!("setting cookie {name}"),
                Method::POST,
                "/cookie",
                Some(cookie),
            )
            .await;
    }

    /// Deletes every cookie visible to the current page.
    pub async fn delete_all_cookies(&self) {
        self.session
            .must("deleting cookies", Method::DELETE, "/cookie", None)
            .await;
    }
}

impl Element {
    /// Clicks the element (scrolling it into view first). Panics if it is hidden or
    /// covered by another element.
    pub async fn click(&self) {
        self.call("click", Method::POST, "click", None).await;
    }

    /// The element's rendered text.
    pub async fn text(&self) -> String {
        self.try_text()
            .await
            .unwrap_or_else(|e| panic!("browser: reading an element's text failed: {e}"))
    }

    async fn try_text(&self) -> Result<String, WebDriverError> {
        let path = format!("/element/{}/text", self.id);
        Ok(as_string(
            self.session.call(Method::GET, &path, None).await?,
        ))
    }

    /// The element's HTML attribute `name`, or `None` if it has none. Note that the
    /// `value` attribute of an input is its initial value: read what the user typed with
    /// [`Element::property`]`("value")`.
    pub async fn attr(&self, name: &str) -> Option<String> {
        match self
            .call(
                &format!("reading attribute {name}"),
                Method::GET,
                &format!("attribute/{name}"),
                None,
            )
            .await
        {
            Value::Null => None,
            value => Some(as_string(value)),
        }
    }

    /// The element's DOM property `name` (`value`, `checked`, `disabled`...), as JSON.
    pub async fn property(&self, name: &str) -> Value {
        self.call(
            &format!("reading property {name}"),
            Method::GET,
            &format!("property/{name}"),
            None,
        )
        .await
    }

    /// Clears the input and types `text` into it.
    pub async fn type_text(&self, text: &str) {
        self.call("clear", Method::POST, "clear", None).await;
        self.call("typing", Method::POST, "value", Some(json!({"text": text})))
            .await;
    }

    /// The element as an argument for [`Browser::execute`].
    pub fn as_arg(&self) -> Value {
        json!({ELEMENT_KEY: self.id})
    }

    async fn call(&self, what: &str, method: Method, command: &str, body: Option<Value>) -> Value {
        let path = format!("/element/{}/{command}", self.id);
        self.session
            .call(method, &path, body)
            .await
            .unwrap_or_else(|e| panic!("browser: element {what} failed: {e}"))
    }
}

impl Drop for Browser {
    /// Ends the session so chromedriver closes Chromium; [`Driver`]'s drop then kills
    /// whatever is left.
    fn drop(&mut self) {
        let path = self
            .session
            .url
            .split_once("/session/")
            .map(|(_, id)| format!("/session/{id}"))
            .unwrap_or_default();
        let _ = delete_blocking(self.driver.port, &path);
    }
}

/// Sends `DELETE path` to chromedriver over plain HTTP/1.1 and waits (5 s at most) for the
/// whole answer, as Drop cannot await. Chromedriver keeps the connection open despite
/// `Connection: close`, so the answer ends after `Content-Length` bytes of body, not at EOF.
fn delete_blocking(port: u16, path: &str) -> std::io::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if answer.len() >= end + 4 + length {
                return Ok(());
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk)? {
            0 => return Ok(()),
            n => answer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A running chromedriver, in a process group of its own; dropping it kills the group
/// and every descendant.
#[derive(Debug)]
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn spawn() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("browser: cannot find a free port: {e}"));
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("browser: cannot run {CHROMEDRIVER} (see scripts/ensure-chromium): {e}")
            });
        Driver { child, port }
    }

    /// Waits for `GET /status` to answer `ready: true`.
    async fn wait_ready(&mut self, client: &reqwest::Client) -> Result<(), String> {
        let url = format!("http://127.0.0.1:{}/status", self.port);
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            match request(client, Method::GET, &url, None).await {
                Ok(status) if status.get("ready") == Some(&Value::Bool(true)) => return Ok(()),
                Ok(status) => last = format!("not ready: {status}"),
                Err(e) => last = e.to_string(),
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                return Err(format!("chromedriver exited at start ({exit})"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("not ready within {READY_TIMEOUT:?} ({last})"))
    }
}

impl Drop for Driver {
    /// Kills chromedriver's process group and every descendant, then waits (2 s at most)
    /// until none of them runs any more. Processes Chromium orphaned may linger a few
    /// seconds as zombies until init reaps them; they run nothing.
    fn drop(&mut self) {
        use nix::sys::signal::{SIGKILL, kill, killpg};
        use nix::unistd::Pid;
        let pid = self.child.id();
        // Collect descendants before killing anything: orphans are reparented to init and
        // lose the trail.
        let table = processes();
        let descendants = descendants(&table, pid);
        let Ok(group) = i32::try_from(pid) else {
            return;
        };
        let _ = killpg(Pid::from_raw(group), SIGKILL);
        for pid in descendants.iter().filter_map(|&p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline
            && processes()
                .iter()
                .any(|p| p.state != 'Z' && (p.pgrp == pid || descendants.contains(&p.pid)))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One line of the process table.
#[derive(Debug, Clone, Copy)]
struct Process {
    pid: u32,
    ppid: u32,
    pgrp: u32,
    /// `R`, `S`, `Z` (zombie)...
    state: char,
}

/// Every process of the machine, read from `/proc/*/stat`.
fn processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid pgrp ...`; comm may contain spaces and parentheses.
            let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
            let state = fields.next()?.chars().next()?;
            let ppid = fields.next()?.parse().ok()?;
            let pgrp = fields.next()?.parse().ok()?;
            Some(Process {
                pid,
                ppid,
                pgrp,
                state,
            })
        })
        .collect()
}

/// The pids of every descendant of `root` in `table`.
fn descendants(table: &[Process], root: u32) -> Vec<u32> {
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(table.iter().filter(|p| p.ppid == parent).map(|p| p.pid));
        i += 1;
    }
    found.remove(0);
    found
}

/// Decodes standard base64 (with or without padding; whitespace is ignored).
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for (at, byte) in text.bytes().enumerate() {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\n' | b'\r' | b'\t' => continue,
            other => return Err(format!("unexpected byte {other:#04x} at {at}")),
        };
        acc = (acc << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// Where a browser test keeps its screenshots: `DROVER_SCREENSHOTS` (made absolute and
/// created; `docs/screenshots` refreshes the ones README shows), else the temp folder.
pub fn screenshots_dir() -> std::path::PathBuf {
    match std::env::var_os("DROVER_SCREENSHOTS") {
        Some(dir) => {
            let dir = std::path::absolute(std::path::PathBuf::from(dir))
                .unwrap_or_else(|e| panic!("{e}"));
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
            dir
        }
        None => std::env::temp_dir(),
    }
}
