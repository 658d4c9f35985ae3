//! The custom lead fields routing writes (`salesOwner`, `nurtureTrack`), over real HTTP: the
//! describe calls list them, a form fill leaves them alone, Sync Leads writes them and the
//! lead and the bulk export read them back.

mod common;

use std::time::Duration;

use common::{code, start};
use serde_json::{Value, json};

const CUSTOM: [&str; 2] = ["salesOwner", "nurtureTrack"];

impl common::Sb {
    async fn fill(&self, body: Value) -> Value {
        let resp = self
            .http
            .post(self.url("/_sandbox/forms/fill"))
            .json(&body)
            .send()
            .await
            .expect("fill");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("json")
    }

    async fn lead(&self, id: u64, token: &str) -> Value {
        let v = self
            .get(
                &format!(
                    "/rest/v1/lead/{id}.json?fields=email,country,title,salesOwner,nurtureTrack"
                ),
                token,
            )
            .await;
        assert_eq!(v["success"], true, "{v}");
        v["result"][0].clone()
    }
}

#[tokio::test]
async fn describe_lists_the_routing_fields_as_writable_strings_not_searchable() {
    let sb = start("none").await;
    let t = sb.token().await;
    let d = sb.get("/rest/v1/leads/describe.json", &t).await;
    let fields = d["result"].as_array().expect("fields");
    for name in CUSTOM {
        let f = fields
            .iter()
            .find(|f| f["rest"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {d}"));
        assert_eq!(f["dataType"], "string", "{f}");
        assert_eq!(f["rest"]["readOnly"], false, "{f}");
        assert_eq!(f["length"], 255, "{f}");
    }
    let d2 = sb.get("/rest/v1/leads/describe2.json", &t).await;
    let api = &d2["result"][0];
    for name in CUSTOM {
        let f = api["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {d2}"));
        assert_eq!(f["updateable"], true, "{f}");
        assert!(
            !api["searchableFields"]
                .as_array()
                .expect("searchable")
                .iter()
                .any(|s| s[0] == name),
            "{name} is not a lookup field: {d2}"
        );
    }
    // As in Marketo, a custom field is not something to find leads by.
    let by_owner = sb
        .get(
            "/rest/v1/leads.json?filterType=salesOwner&filterValues=Dana",
            &t,
        )
        .await;
    assert_eq!(code(&by_owner), "1011", "{by_owner}");
    sb.stop().await;
}

#[tokio::test]
async fn a_fill_leaves_the_routing_fields_and_a_sync_writes_them() {
    let sb = start("none").await;
    let t = sb.token().await;
    // The fill creates the lead (Marketo's form: found by email or created); routing has not
    // happened yet, so both fields are empty.
    let filled = sb
        .fill(json!({"email": "Ann.Lee@Globex.com", "country": "Germany", "title": "VP Marketing"}))
        .await;
    assert_eq!(filled["created"], true, "{filled}");
    let id = filled["leadId"].as_u64().expect("lead id");
    let lead = sb.lead(id, &t).await;
    assert_eq!(lead["email"], "Ann.Lee@Globex.com");
    assert_eq!(lead["country"], "Germany");
    for name in CUSTOM {
        assert_eq!(lead[name], Value::Null, "{lead}");
    }

    // A return writes them, found by email (case aside), as Drover's return sends them.
    let sync = sb
        .post_json(
            "/rest/v1/leads.json",
            &t,
            &json!({"action": "updateOnly", "lookupField": "email", "input": [
                {"email": "ann.lee@globex.com", "salesOwner": "Dana Weber", "nurtureTrack": "EMEA Executive"}
            ]}),
        )
        .await;
    assert_eq!(sync["result"][0]["status"], "updated", "{sync}");
    assert_eq!(sync["result"][0]["id"].as_u64(), Some(id), "{sync}");
    let lead = sb.lead(id, &t).await;
    assert_eq!(lead["salesOwner"], "Dana Weber", "{lead}");
    assert_eq!(lead["nurtureTrack"], "EMEA Executive", "{lead}");

    // The same visitor fills the form again: the lead is updated, not duplicated, and what
    // the form does not ask keeps its value.
    let again = sb
        .fill(json!({"email": "ann.lee@globex.com", "title": "CMO"}))
        .await;
    assert_eq!(again["created"], false, "{again}");
    assert_eq!(again["leadId"].as_u64(), Some(id), "{again}");
    let lead = sb.lead(id, &t).await;
    assert_eq!(lead["title"], "CMO");
    assert_eq!(lead["salesOwner"], "Dana Weber", "{lead}");
    assert_eq!(lead["nurtureTrack"], "EMEA Executive", "{lead}");

    // A wrong type is refused per record, as for any string field.
    let bad = sb
        .post_json(
            "/rest/v1/leads.json",
            &t,
            &json!({"action": "updateOnly", "lookupField": "id", "input": [{"id": id, "salesOwner": {"name": "x"}}]}),
        )
        .await;
    assert_eq!(bad["result"][0]["status"], "skipped", "{bad}");
    assert_eq!(sb.lead(id, &t).await["salesOwner"], "Dana Weber");

    // The bulk export reads them as columns.
    let now = chrono::Utc::now();
    let window = json!({
        "startAt": (now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "endAt": (now + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    let create = json!({"fields": ["id", "email", "salesOwner", "nurtureTrack"], "format": "CSV",
        "filter": {"updatedAt": window}});
    let v = sb
        .post_json("/bulk/v1/leads/export/create.json", &t, &create)
        .await;
    let export = v["result"][0]["exportId"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned();
    sb.post_json(
        &format!("/bulk/v1/leads/export/{export}/enqueue.json"),
        &t,
        &json!({}),
    )
    .await;
    let done = sb.wait_export("leads", &export, &t).await;
    assert_eq!(done["result"][0]["status"], "Completed", "{done}");
    let text = sb
        .http
        .get(sb.url(&format!("/bulk/v1/leads/export/{export}/file.json")))
        .bearer_auth(&t)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("file")
        .text()
        .await
        .expect("text");
    assert!(
        text.starts_with("id,email,salesOwner,nurtureTrack\n"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == format!("{id},ann.lee@globex.com,Dana Weber,EMEA Executive")),
        "{text}"
    );
    sb.stop().await;
}
