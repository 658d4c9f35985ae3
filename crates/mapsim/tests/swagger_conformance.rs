//! Every endpoint the sandbox serves, called for real and checked against Adobe's Swagger 2.0
//! specs in `vendor-spec/` (responses, and the JSON request bodies we send).
//!
//! The validator below handles what these specs use: `$ref`, `type`, `required`, `properties`,
//! `items` and `enum`. Where the docs and the spec disagree we follow the docs; each such
//! deviation is allowed explicitly through [`Deviation`], never by loosening the validator:
//! - error envelopes (`success:false`) carry no `result`/`warnings` (the docs' examples; the
//!   spec marks them required);
//! - Sync Leads skipped records carry `reasons` (an array of `Reason`), where the spec's `Lead`
//!   model says `reason` (a single `Reason`); we validate `reasons[]` against `Reason`;
//! - `columnHeaderNames` is a map `{"id": "Marketo Id"}` in the docs' examples, while the spec's
//!   `ColumnHeaderNames` model is `{name, value}`; we send (and accept) the map and check that it
//!   maps strings to strings;
//! - `ExportActivityRequest.fields` is optional per the docs (required in the spec): we send it
//!   anyway, so no deviation is needed for our requests;
//! - export status `Cancelled` (the docs' cancel examples) vs `Canceled` in the spec's description
//!   (not an enum, so it validates either way);
//! - export files and import failure/warning files are CSV, not JSON (`ObservableOf…` in the
//!   spec), and are not schema-checked here (tests/api.rs checks their content).

mod common;

use std::collections::BTreeSet;

use common::{code, last_31_days, start};
use serde_json::{Value, json};

fn load(name: &str) -> Value {
    let path = format!("{}/vendor-spec/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("spec file")).expect("spec json")
}

/// Explicitly allowed departures from the spec (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Deviation {
    None,
    ErrorEnvelope,
    ColumnHeaderMap,
}

struct Validator<'a> {
    spec: &'a Value,
    deviation: Deviation,
    errors: Vec<String>,
}

impl Validator<'_> {
    fn lookup(&self, reference: &str) -> Value {
        let name = reference.strip_prefix("#/definitions/").expect("local ref");
        self.spec["definitions"]
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("unknown definition {name}"))
    }

    fn check(&mut self, schema: &Value, v: &Value, path: &str) {
        if self.deviation == Deviation::ColumnHeaderMap && path.ends_with(".columnHeaderNames") {
            let ok = v
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string));
            if !ok {
                self.errors
                    .push(format!("{path}: expected a map of strings, got {v}"));
            }
            return;
        }
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let target = self.lookup(r);
            self.check(&target, v, path);
            return;
        }
        if let Some(t) = schema.get("type").and_then(Value::as_str) {
            let ok = match t {
                "object" => v.is_object(),
                "array" => v.is_array(),
                "string" => v.is_string(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "boolean" => v.is_boolean(),
                "file" => true,
                other => panic!("unhandled type {other}"),
            };
            if !ok {
                self.errors.push(format!("{path}: expected {t}, got {v}"));
                return;
            }
        }
        if let Some(e) = schema.get("enum").and_then(Value::as_array)
            && !e.contains(v)
        {
            self.errors.push(format!("{path}: {v} not in {e:?}"));
        }
        if let Some(obj) = v.as_object() {
            let error_envelope = self.deviation == Deviation::ErrorEnvelope
                && obj.get("success") == Some(&json!(false));
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let key = r.as_str().expect("required key");
                let excused = error_envelope && matches!(key, "result" | "warnings");
                if !obj.contains_key(key) && !excused {
                    self.errors
                        .push(format!("{path}: missing required '{key}'"));
                }
            }
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, sub) in props {
                    if let Some(val) = obj.get(k) {
                        self.check(sub, val, &format!("{path}.{k}"));
                    }
                }
            }
        }
        if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
            for (i, item) in arr.iter().enumerate() {
                self.check(items, item, &format!("{path}[{i}]"));
            }
        }
    }
}

/// The 200 response schema of `method path` in `spec`.
fn response_schema(spec: &Value, method: &str, path: &str) -> Value {
    spec["paths"][path][method]["responses"]["200"]["schema"]
        .as_object()
        .map(|o| Value::Object(o.clone()))
        .unwrap_or_else(|| panic!("no 200 schema for {method} {path}"))
}

/// The body parameter schema of `method path`.
fn body_schema(spec: &Value, method: &str, path: &str) -> Value {
    spec["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["in"] == "body"))
        .map(|p| p["schema"].clone())
        .unwrap_or_else(|| panic!("no body parameter for {method} {path}"))
}

fn validate(spec: &Value, schema: &Value, v: &Value, what: &str, deviation: Deviation) {
    let mut val = Validator {
        spec,
        deviation,
        errors: Vec::new(),
    };
    val.check(schema, v, "$");
    assert!(
        val.errors.is_empty(),
        "{what} does not conform: {:#?}\n{v}",
        val.errors
    );
}

/// Checks a response body against the spec's 200 schema, with the error-envelope deviation.
fn conforms(spec: &Value, method: &str, path: &str, v: &Value, seen: &mut BTreeSet<String>) {
    let schema = response_schema(spec, method, path);
    validate(
        spec,
        &schema,
        v,
        &format!("{method} {path}"),
        Deviation::ErrorEnvelope,
    );
    seen.insert(format!("{method} {path}"));
}

fn request_conforms(spec: &Value, method: &str, path: &str, body: &Value) {
    let schema = body_schema(spec, method, path);
    validate(
        spec,
        &schema,
        body,
        &format!("request of {method} {path}"),
        Deviation::ColumnHeaderMap,
    );
}

#[tokio::test]
async fn every_endpoint_conforms_to_the_vendor_swagger() {
    let mapi = load("swagger-mapi.json");
    let identity = load("swagger-identity.json");
    let sb = start("partial-import").await;
    let mut seen = BTreeSet::new();

    // Identity, GET and POST.
    for method in ["get", "post"] {
        let v: Value = sb
            .identity(method == "post", common::ID, common::SECRET)
            .await
            .json()
            .await
            .expect("json");
        validate(
            &identity,
            &response_schema(&identity, method, "/identity/oauth/token"),
            &v,
            "identity",
            Deviation::None,
        );
    }
    let t = sb.token().await;

    // Lead database.
    let v = sb.get("/rest/v1/leads/describe.json", &t).await;
    conforms(&mapi, "get", "/rest/v1/leads/describe.json", &v, &mut seen);
    let v = sb.get("/rest/v1/activities/types.json", &t).await;
    conforms(
        &mapi,
        "get",
        "/rest/v1/activities/types.json",
        &v,
        &mut seen,
    );
    let v = sb
        .get(
            "/rest/v1/leads.json?filterType=id&filterValues=1,2,3&batchSize=2",
            &t,
        )
        .await;
    conforms(&mapi, "get", "/rest/v1/leads.json", &v, &mut seen);
    let v = sb
        .get(
            "/rest/v1/lead/4.json?fields=email,leadScore,unsubscribed",
            &t,
        )
        .await;
    conforms(&mapi, "get", "/rest/v1/lead/{leadId}.json", &v, &mut seen);
    let sync = json!({"action": "createOrUpdate", "lookupField": "email", "partitionName": "Default", "asyncProcessing": false,
        "input": [{"email": "conf@example.com", "leadScore": 5}, {"email": "x@example.com", "leadScore": "abc"}, {"firstName": "no email"}]});
    request_conforms(&mapi, "post", "/rest/v1/leads.json", &sync);
    let v = sb.post_json("/rest/v1/leads.json", &t, &sync).await;
    conforms(&mapi, "post", "/rest/v1/leads.json", &v, &mut seen);
    // Deviation: `reasons[]` (docs) instead of `reason` (spec); each item must be a `Reason`.
    let reason = json!({"$ref": "#/definitions/Reason"});
    let mut skipped = 0;
    for r in v["result"].as_array().expect("result") {
        if r["status"] == "skipped" {
            skipped += 1;
            let reasons = r["reasons"].as_array().expect("reasons array");
            assert!(!reasons.is_empty());
            for x in reasons {
                validate(&mapi, &reason, x, "Reason", Deviation::None);
            }
        }
    }
    assert_eq!(skipped, 2);
    let form: Value = sb
        .http
        .post(sb.url("/rest/v1/leads.json?_method=GET"))
        .bearer_auth(&t)
        .form(&[("filterType", "id"), ("filterValues", "1")])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    conforms(&mapi, "get", "/rest/v1/leads.json", &form, &mut seen);
    let v = sb.get("/rest/v1/stats/usage.json", &t).await;
    conforms(&mapi, "get", "/rest/v1/stats/usage.json", &v, &mut seen);
    let v = sb.get("/rest/v1/stats/errors.json", &t).await;
    conforms(&mapi, "get", "/rest/v1/stats/errors.json", &v, &mut seen);

    // Bulk extract, both objects.
    let lead_req = json!({"fields": ["id", "email"], "format": "CSV", "columnHeaderNames": {"id": "Marketo Id"},
        "filter": {"createdAt": last_31_days()}});
    let act_req = json!({"fields": ["marketoGUID", "leadId", "activityDate", "activityTypeId"], "format": "CSV",
        "filter": {"createdAt": last_31_days(), "activityTypeIds": [1, 12]}});
    for (obj, req) in [("leads", lead_req), ("activities", act_req)] {
        let base = format!("/bulk/v1/{obj}/export");
        request_conforms(&mapi, "post", &format!("{base}/create.json"), &req);
        let v = sb.post_json(&format!("{base}/create.json"), &t, &req).await;
        conforms(&mapi, "post", &format!("{base}/create.json"), &v, &mut seen);
        let id = v["result"][0]["exportId"].as_str().expect("id").to_owned();
        let v = sb
            .post_json(&format!("{base}/{id}/enqueue.json"), &t, &json!({}))
            .await;
        conforms(
            &mapi,
            "post",
            &format!("{base}/{{exportId}}/enqueue.json"),
            &v,
            &mut seen,
        );
        let again = sb
            .post_json(&format!("{base}/{id}/enqueue.json"), &t, &json!({}))
            .await;
        assert_eq!(code(&again), "1029");
        conforms(
            &mapi,
            "post",
            &format!("{base}/{{exportId}}/enqueue.json"),
            &again,
            &mut seen,
        );
        let done = sb.wait_export(obj, &id, &t).await;
        conforms(
            &mapi,
            "get",
            &format!("{base}/{{exportId}}/status.json"),
            &done,
            &mut seen,
        );
        let v = sb.get(&format!("{base}.json?status=Completed"), &t).await;
        conforms(&mapi, "get", &format!("{base}.json"), &v, &mut seen);
        let file = sb
            .http
            .get(sb.url(&format!("{base}/{id}/file.json")))
            .bearer_auth(&t)
            .send()
            .await
            .expect("file");
        assert_eq!(file.status(), 200);
        seen.insert(format!("get {base}/{{exportId}}/file.json"));
        let c = sb.post_json(&format!("{base}/create.json"), &t, &req).await;
        let cid = c["result"][0]["exportId"].as_str().expect("id").to_owned();
        let v = sb
            .post_json(&format!("{base}/{cid}/cancel.json"), &t, &json!({}))
            .await;
        conforms(
            &mapi,
            "post",
            &format!("{base}/{{exportId}}/cancel.json"),
            &v,
            &mut seen,
        );
    }

    // Bulk import.
    let v = sb
        .import_csv(
            &t,
            "email,leadScore\nimp-1@example.com,3\nnot-an-email,4\nimp-2@example.com,abc\n",
            "email",
        )
        .await;
    conforms(&mapi, "post", "/bulk/v1/leads.json", &v, &mut seen);
    let batch = v["result"][0]["batchId"].as_u64().expect("batch");
    let done = sb.wait_import(batch, &t).await;
    conforms(
        &mapi,
        "get",
        "/bulk/v1/leads/batch/{batchId}.json",
        &done,
        &mut seen,
    );
    for kind in ["failures", "warnings"] {
        let r = sb
            .http
            .get(sb.url(&format!("/bulk/v1/leads/batch/{batch}/{kind}.json")))
            .bearer_auth(&t)
            .send()
            .await
            .expect("file");
        assert_eq!(r.status(), 200);
        seen.insert(format!("get /bulk/v1/leads/batch/{{batchId}}/{kind}.json"));
    }

    // Error envelopes validate too (with the documented deviation).
    let err = sb.get("/rest/v1/leads/describe.json", "bogus").await;
    assert_eq!(code(&err), "601");
    conforms(
        &mapi,
        "get",
        "/rest/v1/leads/describe.json",
        &err,
        &mut seen,
    );

    let expected = [
        "get /rest/v1/leads/describe.json",
        "get /rest/v1/activities/types.json",
        "get /rest/v1/leads.json",
        "post /rest/v1/leads.json",
        "get /rest/v1/lead/{leadId}.json",
        "get /rest/v1/stats/usage.json",
        "get /rest/v1/stats/errors.json",
        "post /bulk/v1/leads.json",
        "get /bulk/v1/leads/batch/{batchId}.json",
        "get /bulk/v1/leads/batch/{batchId}/failures.json",
        "get /bulk/v1/leads/batch/{batchId}/warnings.json",
    ];
    for e in expected {
        assert!(seen.contains(e), "not covered: {e}");
    }
    for obj in ["leads", "activities"] {
        for op in [
            "post /create.json",
            "post /{exportId}/enqueue.json",
            "get /{exportId}/status.json",
            "get /{exportId}/file.json",
            "post /{exportId}/cancel.json",
        ] {
            let (m, p) = op.split_once(' ').expect("op");
            let key = format!("{m} /bulk/v1/{obj}/export{p}");
            assert!(seen.contains(&key), "not covered: {key}");
            assert!(
                mapi["paths"][format!("/bulk/v1/{obj}/export{p}")][m].is_object(),
                "not in spec: {key}"
            );
        }
    }
    sb.stop().await;
}

#[test]
fn validator_rejects_bad_bodies() {
    let mapi = load("swagger-mapi.json");
    let schema = json!({"$ref": "#/definitions/ResponseOfExportResponse"});
    let mut v = Validator {
        spec: &mapi,
        deviation: Deviation::None,
        errors: Vec::new(),
    };
    v.check(&schema, &json!({"requestId": "a#b", "success": true, "result": [{"status": 3}], "errors": [], "warnings": []}), "$");
    assert_eq!(v.errors.len(), 2, "{:?}", v.errors); // missing exportId, status not a string
    let mut v = Validator {
        spec: &mapi,
        deviation: Deviation::None,
        errors: Vec::new(),
    };
    v.check(
        &json!({"$ref": "#/definitions/SyncLeadRequest"}),
        &json!({"action": "upsert", "input": []}),
        "$",
    );
    assert_eq!(v.errors.len(), 1, "{:?}", v.errors); // enum
    let mut v = Validator {
        spec: &mapi,
        deviation: Deviation::None,
        errors: Vec::new(),
    };
    v.check(
        &json!({"$ref": "#/definitions/ResponseOfLead"}),
        &json!({"requestId": "a#b", "success": false, "errors": []}),
        "$",
    );
    assert_eq!(
        v.errors.len(),
        2,
        "error envelope needs the explicit deviation: {:?}",
        v.errors
    );
}
