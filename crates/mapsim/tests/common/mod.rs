//! Helpers shared by the sandbox's HTTP tests.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use drover_mapsim::{FaultProfile, Limits, RunningSandbox, SandboxConfig};
use serde_json::Value;

pub const ID: &str = "test-client";
pub const SECRET: &str = "test-secret";
pub const OTHER_ID: &str = "other-client";
pub const OTHER_SECRET: &str = "other-secret";

/// A started sandbox plus an HTTP client.
pub struct Sb {
    pub sb: RunningSandbox,
    pub http: reqwest::Client,
    pub base: String,
}

pub async fn start_with(faults: &str, limits: Limits, leads: usize) -> Sb {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let faults: FaultProfile = faults.parse().expect("faults");
    let sb = drover_mapsim::start(
        SandboxConfig {
            leads,
            seed: 7,
            client_id: ID.to_owned(),
            client_secret: SECRET.to_owned(),
            extra_clients: vec![(OTHER_ID.to_owned(), OTHER_SECRET.to_owned())],
            faults,
            limits,
            ..SandboxConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("start");
    let base = sb.base_url();
    let http = reqwest::Client::builder().build().expect("client");
    Sb { sb, http, base }
}

pub fn fast_limits() -> Limits {
    Limits {
        job_latency: Duration::from_millis(100),
        ..Limits::default()
    }
}

pub async fn start(faults: &str) -> Sb {
    start_with(faults, fast_limits(), 2_000).await
}

impl Sb {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The Identity call with `id` / `secret`, by GET or POST (both are documented).
    pub async fn identity(&self, post: bool, id: &str, secret: &str) -> reqwest::Response {
        let url = self.url("/identity/oauth/token");
        let req = if post {
            self.http.post(url)
        } else {
            self.http.get(url)
        };
        req.query(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .expect("identity")
    }

    pub async fn token_for(&self, id: &str, secret: &str) -> String {
        let resp = self.identity(false, id, secret).await;
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.expect("json");
        v["access_token"].as_str().expect("token").to_owned()
    }

    pub async fn token(&self) -> String {
        self.token_for(ID, SECRET).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Value {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    }

    /// POST `body` as `content_type`, whatever it is (for malformed requests).
    pub async fn post_raw(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("send")
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> Value {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    }

    pub async fn admin_put_faults(&self, body: &Value) {
        let resp = self
            .http
            .put(self.url("/_sandbox/faults"))
            .json(body)
            .send()
            .await
            .expect("put");
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    }

    pub async fn admin(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("admin")
            .json()
            .await
            .expect("json")
    }

    /// Polls `path` until its `result[0].status` is no longer one of `running`.
    async fn poll_status(&self, path: &str, token: &str, running: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.get(path, token).await;
            let status = v["result"][0]["status"].as_str().unwrap_or_default();
            if !running.contains(&status) {
                return v;
            }
            assert!(Instant::now() < deadline, "{path} stuck: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls an export until it leaves Created/Queued/Processing.
    pub async fn wait_export(&self, obj: &str, id: &str, token: &str) -> Value {
        let path = format!("/bulk/v1/{obj}/export/{id}/status.json");
        self.poll_status(&path, token, &["Created", "Queued", "Processing"])
            .await
    }

    /// Polls an import batch until Complete or Failed.
    pub async fn wait_import(&self, batch: u64, token: &str) -> Value {
        let path = format!("/bulk/v1/leads/batch/{batch}.json");
        self.poll_status(&path, token, &["Queued", "Importing"])
            .await
    }

    pub async fn import_csv(&self, token: &str, csv: &str, lookup: &str) -> Value {
        let part = reqwest::multipart::Part::bytes(csv.as_bytes().to_vec())
            .file_name("leads.csv")
            .mime_str("text/csv")
            .expect("mime");
        let form = reqwest::multipart::Form::new()
            .text("format", "csv")
            .part("file", part);
        self.http
            .post(self.url("/bulk/v1/leads.json"))
            .query(&[("lookupField", lookup)])
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("import")
            .json()
            .await
            .expect("json")
    }

    pub async fn stop(self) {
        self.sb.shutdown().await;
    }
}

/// The first error code of an envelope.
pub fn code(v: &Value) -> &str {
    v["errors"][0]["code"].as_str().unwrap_or("")
}

/// A 31-day window ending now, as the export filter wants it.
pub fn last_31_days() -> Value {
    let end = chrono::Utc::now();
    let start = end - chrono::Duration::days(31);
    serde_json::json!({
        "startAt": start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "endAt": end.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    })
}
