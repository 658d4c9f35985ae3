//! `drover mapsim` as a process: form fills on a timer and on request, POSTed to a real
//! receiver with the flags' token and signature, and the token and secret never printed,
//! logged (at debug level) or listed.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use support::{Proc, bare_drover};

const TOKEN: &str = "cli-token-0d9e8f7a6b";
const SECRET: &str = "cli-hmac-secret-1c2b3a";

type Calls = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn receive(State(calls): State<Calls>, headers: HeaderMap, body: Bytes) -> StatusCode {
    calls.lock().expect("lock").push((headers, body));
    StatusCode::ACCEPTED
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[test]
fn mapsim_sends_form_fills_to_the_webhook_and_never_shows_its_secrets() {
    let _turn = support::serial();
    let rt = support::runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    let secret_file = dir.path().join("hmac");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret file");
    let log = dir.path().join("mapsim.log");
    rt.block_on(async {
        let calls: Calls = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/hooks/dev/contact_sales/form",
            listener.local_addr().expect("addr")
        );
        let app = Router::new()
            .route("/hooks/dev/contact_sales/form", post(receive))
            .with_state(calls.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let mut cmd = bare_drover();
        cmd.args(["mapsim", "--port", "0", "--leads", "300", "--webhook", &url])
            .arg("--webhook-token-file")
            .arg(&token_file)
            .arg("--webhook-hmac-secret-file")
            .arg(&secret_file)
            .args(["--form-fills-every", "200ms"])
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log"));
        let mut child = cmd.spawn().expect("spawn drover mapsim");
        let stdout = child.stdout.take().expect("stdout");
        let mut proc = Proc::new(child, "mapsim", log.clone());
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().expect("a line").expect("utf-8");
        let base = first
            .strip_prefix("MAP sandbox listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_owned();
        let second = lines.next().expect("a line").expect("utf-8");
        assert!(
            second.contains("every 200ms")
                && second.contains(&url)
                && second.contains("bearer token and an HMAC signature"),
            "{second}"
        );

        // The timer's fills arrive, each with the token and a signature.
        let deadline = Instant::now() + Duration::from_secs(30);
        while calls.lock().expect("lock").len() < 2 {
            assert!(Instant::now() < deadline, "no timed fill arrived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for (h, body) in calls.lock().expect("lock").iter() {
            assert_eq!(header(h, "authorization"), format!("Bearer {TOKEN}"));
            let sig = header(h, "x-drover-signature");
            let hex = sig
                .strip_prefix("sha256=")
                .unwrap_or_else(|| panic!("{sig}"));
            let tag: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
                .collect();
            // The secret file's line break is not part of the secret.
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
            ring::hmac::verify(&key, body, &tag).expect("signed with the secret");
            let v: serde_json::Value = serde_json::from_slice(body).expect("json");
            assert_eq!(v["formName"], "Contact Sales");
            assert_eq!(
                header(h, "idempotency-key"),
                v["fillId"].as_str().expect("fillId")
            );
        }

        // A fill on request waits for the webhook and says what it answered.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let fill: serde_json::Value = http
            .post(format!("{base}/_sandbox/forms/fill"))
            .json(&serde_json::json!({"email": "cli@fill.example.com", "country": "Japan"}))
            .send()
            .await
            .expect("fill")
            .json()
            .await
            .expect("json");
        assert_eq!(fill["webhook"]["status"], 202, "{fill}");
        let listing = http
            .get(format!("{base}/_sandbox/webhooks"))
            .send()
            .await
            .expect("list")
            .text()
            .await
            .expect("text");
        assert!(
            listing.contains(&url) && listing.contains("\"bearer\":true"),
            "{listing}"
        );
        assert!(
            !listing.contains(TOKEN) && !listing.contains(SECRET),
            "{listing}"
        );

        let status = proc.terminate(Duration::from_secs(15)).expect("stopped");
        assert!(status.success(), "{status}");
        let mut out = proc.log();
        for line in lines {
            out.push_str(&line.unwrap_or_default());
        }
        assert!(out.contains("form fill sent to the webhook"), "{out}");
        assert!(out.contains("DEBUG"), "debug logging was on: {out}");
        assert!(!out.contains(TOKEN) && !out.contains(SECRET), "{out}");
    });
}

#[test]
fn mapsim_documents_its_webhook_flags_and_refuses_bad_ones() {
    let help = bare_drover()
        .args(["mapsim", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--webhook <URL>",
        "--webhook-token <TOKEN>",
        "--webhook-token-file <FILE>",
        "--webhook-hmac-secret <SECRET>",
        "--webhook-hmac-secret-file <FILE>",
        "--form-fills-every <DURATION>",
        "X-Drover-Signature",
        "no retry",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    let refused = |args: &[&str], says: &str| {
        let out = bare_drover()
            .arg("mapsim")
            .args(["--port", "0", "--leads", "10"])
            .args(args)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        err.into_owned()
    };
    refused(&["--webhook", "ftp://example.com/x"], "http:// or https://");
    refused(&["--form-fills-every", "10ms"], "100ms to 24h");
    refused(&["--form-fills-every", "often"], "30s");
    let err = refused(
        &[
            "--webhook",
            "http://127.0.0.1:9/x",
            "--webhook-token",
            "two words-SeCrEt",
        ],
        "visible ASCII",
    );
    assert!(!err.contains("SeCrEt"), "{err}");
    refused(
        &[
            "--webhook",
            "http://127.0.0.1:9/x",
            "--webhook-token-file",
            "/nonexistent/token",
        ],
        "cannot read /nonexistent/token",
    );
    refused(
        &[
            "--webhook",
            "http://127.0.0.1:9/x",
            "--webhook-hmac-secret-file",
            "/nonexistent/hmac",
        ],
        "cannot read /nonexistent/hmac",
    );
    refused(&["--webhook-token-file", "/tmp/x"], "--webhook <URL>");
    refused(&["--webhook-hmac-secret", "s"], "--webhook <URL>");
    refused(
        &[
            "--webhook",
            "http://127.0.0.1:9/x",
            "--webhook-token",
            "a",
            "--webhook-token-file",
            "/tmp/x",
        ],
        "cannot be used with",
    );
}
