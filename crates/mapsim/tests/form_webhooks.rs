//! Form fills and the webhook calls they make, over real HTTP: the sandbox's endpoints on one
//! side, a real axum receiver on the other.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::{Sb, start};
use drover_mapsim::{FormFill, WebhookTarget};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

const TOKEN: &str = "hook-token-7f3a9c1e";
const HMAC_SECRET: &str = "hmac-secret-52be0d44";

/// How the receiver answers.
#[derive(Clone)]
enum Mode {
    /// 202 with a run id, as Drover's hook endpoint answers.
    Accept,
    /// 500.
    Fail,
    /// Waits for a permit before answering 202 (to hold requests open).
    Hold(Arc<Semaphore>),
    /// Echoes the request's Authorization header back in its body.
    Echo,
}

#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the webhook body is JSON")
    }
}

#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    mode: Arc<Mutex<Mode>>,
    url: String,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    r.got.lock().expect("lock").push(Received {
        headers: headers.clone(),
        body,
    });
    let mode = r.mode.lock().expect("lock").clone();
    match mode {
        Mode::Accept => (
            StatusCode::ACCEPTED,
            axum::Json(json!({"run_id": "run-1", "event_id": "event-1"})),
        )
            .into_response(),
        Mode::Fail => (StatusCode::INTERNAL_SERVER_ERROR, "receiver broke").into_response(),
        Mode::Hold(gate) => {
            let _permit = gate.acquire().await;
            StatusCode::ACCEPTED.into_response()
        }
        Mode::Echo => {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            (StatusCode::OK, format!("you sent {auth}")).into_response()
        }
    }
}

/// A receiver on a free port, answering as `mode` says.
async fn receiver(mode: Mode) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let r = Receiver {
        got: Arc::default(),
        mode: Arc::new(Mutex::new(mode)),
        url: format!("http://{addr}/hooks/dev/contact_sales/form"),
    };
    let app = Router::new()
        .route("/hooks/dev/contact_sales/form", post(receive))
        .with_state(r.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    r
}

impl Receiver {
    fn got(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().expect("lock") = mode;
    }

    /// Waits until `n` requests arrived.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} webhook calls arrived",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `sha256=<hex>` of `body` under `secret`, computed here on its own.
fn verify_signature(secret: &str, body: &[u8], header: &str) {
    let hex = header
        .strip_prefix("sha256=")
        .unwrap_or_else(|| panic!("signature header `{header}` lacks sha256="));
    let tag: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, body, &tag).expect("the signature verifies");
}

impl Sb {
    async fn fill(&self, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.url("/_sandbox/forms/fill"))
            .json(&body)
            .send()
            .await
            .expect("fill");
        let status = StatusCode::from_u16(resp.status().as_u16()).expect("status");
        (status, resp.json().await.expect("json"))
    }

    async fn fill_ok(&self, body: Value) -> Value {
        let (status, v) = self.fill(body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    async fn put_webhooks(&self, body: &Value) -> (u16, String) {
        let resp = self
            .http
            .put(self.url("/_sandbox/webhooks"))
            .json(body)
            .send()
            .await
            .expect("put");
        (resp.status().as_u16(), resp.text().await.expect("text"))
    }

    async fn webhooks(&self) -> (String, Value) {
        let text = self
            .http
            .get(self.url("/_sandbox/webhooks"))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("text");
        let v = serde_json::from_str(&text).expect("json");
        (text, v)
    }

    /// The activities of `types` between `from` and `to`, as the bulk export gives them.
    async fn activities(&self, types: &[u32], from: &str, to: &str) -> Vec<csv::StringRecord> {
        let t = self.token().await;
        let body = json!({"filter": {"createdAt": {"startAt": from, "endAt": to}, "activityTypeIds": types}});
        let v = self
            .post_json("/bulk/v1/activities/export/create.json", &t, &body)
            .await;
        let id = v["result"][0]["exportId"]
            .as_str()
            .expect("export id")
            .to_owned();
        self.post_json(
            &format!("/bulk/v1/activities/export/{id}/enqueue.json"),
            &t,
            &json!({}),
        )
        .await;
        let done = self.wait_export("activities", &id, &t).await;
        assert_eq!(done["result"][0]["status"], "Completed", "{done}");
        let text = self
            .http
            .get(self.url(&format!("/bulk/v1/activities/export/{id}/file.json")))
            .bearer_auth(&t)
            .send()
            .await
            .expect("file")
            .text()
            .await
            .expect("text");
        csv::Reader::from_reader(text.as_bytes())
            .records()
            .map(|r| r.expect("csv row"))
            .collect()
    }
}

fn window() -> (String, String) {
    let now = chrono::Utc::now();
    let f = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    (
        f(now - chrono::Duration::minutes(5)),
        f(now + chrono::Duration::minutes(5)),
    )
}

#[tokio::test]
async fn a_fill_creates_a_lead_the_rest_api_and_the_activities_export_see() {
    let sb = start("none").await;
    let before = sb.admin("/_sandbox/stats").await["leads"]
        .as_u64()
        .expect("leads");
    let v = sb
        .fill_ok(json!({
            "email": "Ada.Lovelace@Analytical.example.com",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "country": "United Kingdom",
            "company": "Analytical Engines, \"Ltd\"",
            "title": "CMO",
        }))
        .await;
    assert_eq!(v["created"], true, "{v}");
    assert_eq!(v["formName"], "Contact Sales");
    assert!(v["webhook"].is_null(), "{v}");
    assert!(
        v["note"].as_str().expect("note").contains("no webhook"),
        "{v}"
    );
    let fill_id = v["fillId"].as_str().expect("fillId");
    assert!(uuid::Uuid::parse_str(fill_id).is_ok(), "{fill_id}");
    assert!(chrono::DateTime::parse_from_rfc3339(v["filledAt"].as_str().expect("at")).is_ok());
    let id = v["leadId"].as_u64().expect("leadId");
    assert_eq!(id, before + 1, "a new lead after the seeded ones");

    // The REST API reads it, by id and by email (any case).
    let t = sb.token().await;
    let one = sb.get(&format!("/rest/v1/lead/{id}.json"), &t).await;
    let lead = &one["result"][0];
    assert_eq!(
        lead["email"], "Ada.Lovelace@Analytical.example.com",
        "{one}"
    );
    assert_eq!(lead["firstName"], "Ada");
    let by_email = sb
        .get(
            "/rest/v1/leads.json?filterType=email&filterValues=ada.lovelace@analytical.example.com&fields=id,country,company,title",
            &t,
        )
        .await;
    let found = &by_email["result"][0];
    assert_eq!(found["id"], id, "{by_email}");
    assert_eq!(found["country"], "United Kingdom");
    assert_eq!(found["company"], "Analytical Engines, \"Ltd\"");
    assert_eq!(found["title"], "CMO");

    // The activities export has its New Lead and its Fill Out Form.
    let (from, to) = window();
    let rows = sb.activities(&[2, 12], &from, &to).await;
    let mine: Vec<_> = rows.iter().filter(|r| r[1] == id.to_string()).collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    let new_lead = mine.iter().find(|r| &r[3] == "12").expect("New Lead");
    let attrs: Value = serde_json::from_str(&new_lead[7]).expect("attributes");
    assert_eq!(attrs["Source Type"], "Web form fillout");
    assert_eq!(attrs["Form Name"], "Contact Sales");
    let form = mine.iter().find(|r| &r[3] == "2").expect("Fill Out Form");
    assert_eq!(&form[6], "Contact Sales");
    assert!(form[5].parse::<u32>().is_ok(), "a Webform ID: {form:?}");
    let attrs: Value = serde_json::from_str(&form[7]).expect("attributes");
    let fields: Value =
        serde_json::from_str(attrs["Form Fields"].as_str().expect("Form Fields")).expect("json");
    assert_eq!(fields["Email"], "Ada.Lovelace@Analytical.example.com");
    assert_eq!(fields["Country"], "United Kingdom");

    // A fill with no body is a made-up visitor, every field filled.
    let v = sb.fill_ok(json!({})).await;
    let id2 = v["leadId"].as_u64().expect("leadId");
    assert_eq!(id2, id + 1);
    let lead = sb.admin(&format!("/_sandbox/leads/{id2}")).await;
    for f in [
        "email",
        "firstName",
        "lastName",
        "country",
        "company",
        "title",
    ] {
        assert!(
            lead[f].as_str().is_some_and(|s| !s.is_empty()),
            "{f}: {lead}"
        );
    }
    assert!(lead["email"].as_str().is_some_and(|e| e.contains('@')));
    let stats = sb.admin("/_sandbox/stats").await;
    assert_eq!(stats["writesByVia"]["form"], 2, "{stats}");
    sb.stop().await;
}

#[tokio::test]
async fn a_second_fill_with_the_same_email_updates_that_lead() {
    let sb = start("none").await;
    let first = sb
        .fill_ok(json!({"email": "grace@navy.example.com", "firstName": "Grace", "country": "United States", "title": "Engineer"}))
        .await;
    let id = first["leadId"].as_u64().expect("id");
    let before = sb.admin(&format!("/_sandbox/leads/{id}")).await;
    sb.http
        .post(sb.url("/_sandbox/clock/advance"))
        .json(&json!({"seconds": 120}))
        .send()
        .await
        .expect("advance");
    let second = sb
        .fill_ok(json!({"email": "  GRACE@navy.example.com ", "title": "Rear Admiral", "country": "Canada", "formName": "Demo Request"}))
        .await;
    assert_eq!(second["leadId"], id, "{second}");
    assert_eq!(second["created"], false);
    assert_ne!(second["fillId"], first["fillId"]);
    let after = sb.admin(&format!("/_sandbox/leads/{id}")).await;
    assert_eq!(after["title"], "Rear Admiral");
    assert_eq!(after["country"], "Canada");
    assert_eq!(
        after["firstName"], "Grace",
        "a field left out keeps its value"
    );
    assert_eq!(after["lastName"], before["lastName"]);
    assert_eq!(after["company"], before["company"]);
    assert_eq!(after["email"], "GRACE@navy.example.com");
    assert!(
        after["updatedAt"].as_str() > before["updatedAt"].as_str(),
        "{after}"
    );
    assert_eq!(after["_writeCount"], 2);

    // One New Lead, two form fills, each under its own form.
    let (from, _) = window();
    let to = (chrono::Utc::now() + chrono::Duration::minutes(10))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let rows = sb.activities(&[2, 12], &from, &to).await;
    let mine: Vec<_> = rows.iter().filter(|r| r[1] == id.to_string()).collect();
    let forms: Vec<&str> = mine
        .iter()
        .filter(|r| &r[3] == "2")
        .map(|r| &r[6])
        .collect();
    assert_eq!(forms, ["Contact Sales", "Demo Request"], "{mine:?}");
    assert_eq!(mine.iter().filter(|r| &r[3] == "12").count(), 1);
    let demo = mine.iter().find(|r| &r[6] == "Demo Request").expect("demo");
    assert_eq!(&demo[5], "203", "a seeded form keeps its Webform ID");
    sb.stop().await;
}

#[tokio::test]
async fn a_fill_updates_the_duplicate_updated_last() {
    let sb = start("none").await;
    let place = |updated: &'static str| {
        let sb = &sb;
        async move {
            let v: Value = sb
                .http
                .post(sb.url("/_sandbox/leads"))
                .json(&json!({"email": "dup@twice.example.com", "firstName": "Dup", "updatedAt": updated}))
                .send()
                .await
                .expect("place")
                .json()
                .await
                .expect("json");
            v["id"].as_u64().expect("id")
        }
    };
    let newer = place("2026-03-01T00:00:00Z").await;
    let older = place("2025-01-01T00:00:00Z").await;
    assert!(older > newer, "the older update has the higher id");
    let v = sb
        .fill_ok(json!({"email": "dup@twice.example.com", "title": "Picked"}))
        .await;
    assert_eq!(v["leadId"], newer, "{v}");
    assert_eq!(
        sb.admin(&format!("/_sandbox/leads/{older}")).await["title"],
        Value::Null
    );
    sb.stop().await;
}

#[tokio::test]
async fn concurrent_fills_of_a_new_address_make_one_lead() {
    let sb = start("none").await;
    let body = json!({"email": "rush@race.example.com"});
    let (a, b, c, d) = tokio::join!(
        sb.fill_ok(body.clone()),
        sb.fill_ok(body.clone()),
        sb.fill_ok(body.clone()),
        sb.fill_ok(body.clone())
    );
    let all = [a, b, c, d];
    let ids: std::collections::BTreeSet<_> = all.iter().map(|v| v["leadId"].to_string()).collect();
    assert_eq!(ids.len(), 1, "{all:?}");
    assert_eq!(all.iter().filter(|v| v["created"] == true).count(), 1);
    let fills: std::collections::BTreeSet<_> =
        all.iter().map(|v| v["fillId"].to_string()).collect();
    assert_eq!(fills.len(), 4, "every fill has its own id");
    sb.stop().await;
}

#[tokio::test]
async fn hostile_fills_are_refused_and_write_nothing() {
    let sb = start("none").await;
    let before = sb.admin("/_sandbox/stats").await;
    let cases = [
        (json!({"email": "not-an-address"}), "email"),
        (json!({"email": "a@b@example.com"}), "email"),
        (json!({"email": ""}), "email"),
        (json!({"firstName": "   "}), "firstName"),
        (json!({"company": "Acme\r\nX-Injected: 1"}), "company"),
        (json!({"title": "x".repeat(256)}), "title"),
        (json!({"formName": "f".repeat(300)}), "formName"),
    ];
    for (body, field) in cases {
        let (status, v) = sb.fill(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["field"], field, "{v}");
        assert!(v["error"].as_str().is_some_and(|e| e.len() > 10), "{v}");
    }
    for raw in [
        "{\"email\": 42}",
        "{\"emial\": \"a@b.com\"}",
        "[1, 2]",
        "{not json",
        "\"just a string\"",
    ] {
        let resp = sb
            .http
            .post(sb.url("/_sandbox/forms/fill"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 400, "{raw}");
        let v: Value = resp.json().await.expect("json");
        assert!(
            v["error"].as_str().expect("error").contains("firstName"),
            "{v}"
        );
    }
    let huge = format!("{{\"title\": \"{}\"}}", "x".repeat(20_000));
    let resp = sb
        .http
        .post(sb.url("/_sandbox/forms/fill"))
        .body(huge)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 413);
    let after = sb.admin("/_sandbox/stats").await;
    assert_eq!(after["leads"], before["leads"]);
    assert_eq!(after["writes"], before["writes"]);
    sb.stop().await;
}

#[tokio::test]
async fn a_receiver_gets_the_lead_with_bearer_signature_and_idempotency_key() {
    let sb = start("none").await;
    let r = receiver(Mode::Accept).await;
    let (status, text) = sb
        .put_webhooks(&json!({"url": r.url, "token": TOKEN, "hmac_secret": HMAC_SECRET}))
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        !text.contains(TOKEN) && !text.contains(HMAC_SECRET),
        "{text}"
    );
    let v = sb
        .fill_ok(json!({"email": "linus@kernel.example.org", "firstName": "Linus", "lastName": "Torvalds", "country": "Finland", "company": "Kernel Co", "title": "Software Engineer"}))
        .await;
    let hook = &v["webhook"];
    assert_eq!(hook["outcome"], "delivered", "{v}");
    assert_eq!(hook["status"], 202);
    assert!(
        hook["response"]
            .as_str()
            .expect("response")
            .contains("run-1"),
        "{hook}"
    );
    assert_eq!(hook["fillId"], v["fillId"]);

    let got = r.got();
    assert_eq!(got.len(), 1);
    let call = &got[0];
    assert_eq!(call.header("authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(call.header("content-type"), "application/json");
    assert_eq!(
        call.header("idempotency-key"),
        v["fillId"].as_str().expect("fillId")
    );
    verify_signature(HMAC_SECRET, &call.body, call.header("x-drover-signature"));
    let body = call.json();
    assert_eq!(body["leadId"], v["leadId"]);
    assert_eq!(body["email"], "linus@kernel.example.org");
    assert_eq!(body["firstName"], "Linus");
    assert_eq!(body["lastName"], "Torvalds");
    assert_eq!(body["country"], "Finland");
    assert_eq!(body["company"], "Kernel Co");
    assert_eq!(body["title"], "Software Engineer");
    assert_eq!(body["segment"], "Practitioner");
    assert_eq!(body["formName"], "Contact Sales");
    assert_eq!(body["fillId"], v["fillId"]);
    assert!(chrono::DateTime::parse_from_rfc3339(body["filledAt"].as_str().expect("at")).is_ok());

    // A tampered body would not verify.
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, HMAC_SECRET.as_bytes());
    let mut tampered = call.body.to_vec();
    tampered[0] = b' ';
    let tag = ring::hmac::sign(&key, &call.body);
    assert!(ring::hmac::verify(&key, &tampered, tag.as_ref()).is_err());

    // The listing shows the delivery and no secret.
    let (text, list) = sb.webhooks().await;
    assert!(
        !text.contains(TOKEN) && !text.contains(HMAC_SECRET),
        "{text}"
    );
    assert_eq!(list["webhook"]["bearer"], true);
    assert_eq!(list["webhook"]["hmacSigned"], true);
    assert_eq!(list["webhook"]["timeoutMs"], 30_000);
    assert_eq!(list["deliveriesTotal"], 1);
    assert_eq!(list["deliveries"][0], *hook);

    // A receiver echoing the token does not get it into the listing either.
    r.set_mode(Mode::Echo);
    let v = sb.fill_ok(json!({})).await;
    assert_eq!(
        v["webhook"]["response"], "you sent Bearer [redacted]",
        "{v}"
    );
    let (text, _) = sb.webhooks().await;
    assert!(!text.contains(TOKEN), "{text}");
    sb.stop().await;
}

#[tokio::test]
async fn a_refusing_or_missing_receiver_is_recorded_and_not_retried() {
    let sb = start("none").await;
    let r = receiver(Mode::Fail).await;
    sb.put_webhooks(&json!({"url": r.url})).await;
    let refused = sb.fill_ok(json!({})).await;
    assert_eq!(refused["webhook"]["outcome"], "refused", "{refused}");
    assert_eq!(refused["webhook"]["status"], 500);
    assert_eq!(refused["webhook"]["response"], "receiver broke");

    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    sb.put_webhooks(&json!({"url": format!("http://{closed}/hooks/x")}))
        .await;
    let down = sb.fill_ok(json!({})).await;
    let hook = &down["webhook"];
    assert_eq!(hook["outcome"], "failed", "{down}");
    assert!(hook["status"].is_null());
    let error = hook["error"].as_str().expect("error");
    assert!(
        error.contains("cannot connect") && error.contains(&closed.port().to_string()),
        "{error}"
    );

    // The receiver back and healthy: the next fill arrives, and nothing of the two before
    // came again.
    r.set_mode(Mode::Accept);
    sb.put_webhooks(&json!({"url": r.url})).await;
    let ok = sb.fill_ok(json!({})).await;
    assert_eq!(ok["webhook"]["outcome"], "delivered");
    let keys: Vec<String> = r
        .got()
        .iter()
        .map(|c| c.header("idempotency-key").to_owned())
        .collect();
    assert_eq!(
        keys,
        [
            refused["fillId"].as_str().expect("id"),
            ok["fillId"].as_str().expect("id")
        ],
        "one call per fill, none repeated"
    );
    let (_, list) = sb.webhooks().await;
    let outcomes: Vec<&str> = list["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| d["outcome"].as_str().expect("outcome"))
        .collect();
    assert_eq!(outcomes, ["refused", "failed", "delivered"]);
    assert!(list["webhook"]["bearer"] == false && list["webhook"]["hmacSigned"] == false);
    assert!(r.got()[0].headers.get("authorization").is_none());
    assert!(r.got()[0].headers.get("x-drover-signature").is_none());
    sb.stop().await;
}

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_is_given_up_on() {
    let sb = start("none").await;
    let gate = Arc::new(Semaphore::new(0));
    let r = receiver(Mode::Hold(gate.clone())).await;
    sb.put_webhooks(&json!({"url": r.url, "timeout_ms": 300}))
        .await;
    let started = Instant::now();
    let v = sb.fill_ok(json!({})).await;
    let hook = &v["webhook"];
    assert_eq!(hook["outcome"], "failed", "{v}");
    assert!(
        hook["error"]
            .as_str()
            .expect("error")
            .contains("no answer within 300 ms"),
        "{hook}"
    );
    let took = hook["durationMs"].as_u64().expect("duration");
    assert!((300..5000).contains(&took), "{took}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.got().len(), 1);
    gate.add_permits(10);
    sb.stop().await;
}

#[tokio::test]
async fn the_timer_fills_on_its_own_without_waiting_for_the_webhook() {
    let sb = start("none").await;
    let gate = Arc::new(Semaphore::new(0));
    let r = receiver(Mode::Hold(gate.clone())).await;
    let (status, text) = sb
        .put_webhooks(&json!({"url": r.url, "every": "100ms"}))
        .await;
    assert_eq!(status, 200, "{text}");
    // Three calls open at once: the timer went on while the first was unanswered.
    let open = r.wait_for(3).await;
    assert!(open.len() >= 3);
    gate.add_permits(1000);
    let got = r.wait_for(16).await;
    let bodies: Vec<Value> = got.iter().map(Received::json).collect();
    let countries: std::collections::BTreeSet<_> =
        bodies.iter().map(|b| b["country"].to_string()).collect();
    let segments: std::collections::BTreeSet<_> =
        bodies.iter().map(|b| b["segment"].to_string()).collect();
    assert!(countries.len() >= 4, "{countries:?}");
    assert!(segments.len() >= 2, "{segments:?}");
    assert!(bodies.iter().all(|b| b["formName"] == "Contact Sales"));
    // Each call is a lead the sandbox holds.
    let id = bodies[0]["leadId"].as_u64().expect("leadId");
    let lead = sb.admin(&format!("/_sandbox/leads/{id}")).await;
    assert_eq!(lead["email"], bodies[0]["email"], "{lead}");
    let (_, list) = sb.webhooks().await;
    assert_eq!(list["formFillsEvery"], "100ms");
    sb.stop().await;
}

#[tokio::test]
async fn bad_webhook_settings_are_refused_without_echoing_secrets() {
    let sb = start("none").await;
    let r = receiver(Mode::Accept).await;
    let (status, _) = sb
        .put_webhooks(&json!({"url": r.url, "token": TOKEN, "every": "1h"}))
        .await;
    assert_eq!(status, 200);
    let bad = [
        json!({"token": TOKEN}),
        json!({"url": "ftp://example.com/x", "token": TOKEN}),
        json!({"url": "http://user:pw@example.com/x"}),
        json!({"url": r.url, "token": format!("{TOKEN} extra")}),
        json!({"url": r.url, "token": TOKEN, "hmac_secret": ""}),
        json!({"url": r.url, "token": 12_345_678}),
        json!({"url": r.url, "every": "0s"}),
        json!({"url": r.url, "every": "fast"}),
        json!({"url": r.url, "timeout_ms": 31_000}),
        json!({"url": r.url, "secret": TOKEN}),
    ];
    for body in bad {
        let (status, text) = sb.put_webhooks(&body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(
            !text.contains(TOKEN) && !text.contains("12345678"),
            "{text}"
        );
        assert!(text.contains("error"), "{text}");
    }
    // Nothing refused changed what is set.
    let (_, list) = sb.webhooks().await;
    assert_eq!(list["webhook"]["url"], r.url.as_str());
    assert_eq!(list["webhook"]["bearer"], true);
    assert_eq!(list["formFillsEvery"], "1h");
    // `{}` turns both off.
    let (status, text) = sb.put_webhooks(&json!({})).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&text).expect("json");
    assert!(
        v["webhook"].is_null() && v["formFillsEvery"].is_null(),
        "{v}"
    );
    sb.stop().await;
}

#[tokio::test]
async fn the_in_process_api_sets_the_webhook_after_start() {
    let sb = start("none").await;
    let r = receiver(Mode::Accept).await;
    assert!(sb.sb.webhook().is_none());
    let target = WebhookTarget::new(&r.url)
        .and_then(|t| t.with_bearer(TOKEN))
        .and_then(|t| t.with_hmac_secret(HMAC_SECRET))
        .expect("target");
    sb.sb.set_webhook(Some(target));
    let shown = format!("{:?}", sb.sb.webhook());
    assert!(
        shown.contains(&r.url) && !shown.contains(TOKEN) && !shown.contains(HMAC_SECRET),
        "{shown}"
    );

    let outcome = sb
        .sb
        .fill_form(FormFill {
            country: Some("Germany".to_owned()),
            title: Some("VP Marketing".to_owned()),
            ..FormFill::default()
        })
        .await
        .expect("fill");
    assert!(outcome.created);
    let delivery = outcome.webhook.clone().expect("delivered");
    assert_eq!(delivery.status, Some(202));
    assert_eq!(delivery.outcome, drover_mapsim::DeliveryOutcome::Delivered);
    assert_eq!(sb.sb.webhook_deliveries(), [delivery]);
    let call = &r.got()[0];
    verify_signature(
        HMAC_SECRET,
        &call.body,
        call.header(drover_mapsim::SIGNATURE_HEADER),
    );
    assert_eq!(call.json()["segment"], "Executive");
    assert_eq!(call.json()["country"], "Germany");

    let refused = sb
        .sb
        .fill_form(FormFill {
            email: Some("nope".to_owned()),
            ..FormFill::default()
        })
        .await;
    assert_eq!(refused.map(|_| ()).map_err(|e| e.field), Err("email"));
    assert!(
        sb.sb
            .set_form_fills_every(Some(Duration::from_millis(1)))
            .is_err()
    );
    assert!(
        sb.sb
            .set_form_fills_every(Some(Duration::from_secs(30)))
            .is_ok()
    );
    assert_eq!(sb.sb.form_fills_every(), Some(Duration::from_secs(30)));
    sb.sb.set_webhook(None);
    let quiet = sb.sb.fill_form(FormFill::default()).await.expect("fill");
    assert!(quiet.webhook.is_none());
    assert_eq!(r.got().len(), 1);
    sb.stop().await;
}

#[tokio::test]
async fn a_timer_and_webhook_given_at_start_deliver() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = receiver(Mode::Accept).await;
    let target = WebhookTarget::new(&r.url)
        .and_then(|t| t.with_bearer(TOKEN))
        .expect("target");
    let sb = drover_mapsim::start(
        drover_mapsim::SandboxConfig {
            leads: 500,
            webhook: Some(target),
            form_fills_every: Some(Duration::from_millis(150)),
            ..drover_mapsim::SandboxConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("start");
    let got = r.wait_for(2).await;
    assert!(
        got.iter()
            .all(|c| c.header("authorization") == format!("Bearer {TOKEN}"))
    );
    assert_ne!(
        got[0].header("idempotency-key"),
        got[1].header("idempotency-key")
    );
    sb.shutdown().await;

    let refused = drover_mapsim::start(
        drover_mapsim::SandboxConfig {
            leads: 10,
            form_fills_every: Some(Duration::from_millis(10)),
            ..drover_mapsim::SandboxConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await;
    assert!(matches!(
        refused,
        Err(drover_mapsim::SandboxError::Config(_))
    ));
}
