//! The sandbox over real HTTP: tokens, leads, bulk extract and import, limits and faults.

mod common;

use std::time::Duration;

use common::{OTHER_ID, OTHER_SECRET, code, fast_limits, last_31_days, start, start_with};
use drover_mapsim::Limits;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn token_lifecycle_and_auth_errors() {
    let sb = start("none").await;
    let first: Value = sb
        .identity(true, common::ID, common::SECRET)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(first["token_type"], "bearer");
    assert!(first["expires_in"].as_i64().expect("expires_in") <= 3600);
    let token = first["access_token"].as_str().expect("token").to_owned();
    assert_eq!(sb.token().await, token, "same token until expiry");

    let bad = sb.identity(false, common::ID, "nope").await;
    assert_eq!(bad.status(), 401);
    let body: Value = bad.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");

    let none: Value = sb
        .http
        .get(sb.url("/rest/v1/leads/describe.json"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(code(&none), "600");
    assert_eq!(none["success"], false);
    assert_eq!(
        code(&sb.get("/rest/v1/leads/describe.json", "garbage").await),
        "601"
    );
    let ok = sb.get("/rest/v1/leads/describe.json", &token).await;
    assert_eq!(ok["success"], true);
    // The access_token query parameter still works.
    let q: Value = sb
        .http
        .get(sb.url("/rest/v1/leads/describe.json"))
        .query(&[("access_token", token.as_str())])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(q["success"], true);

    sb.http
        .post(sb.url("/_sandbox/clock/advance"))
        .json(&json!({"seconds": 3601}))
        .send()
        .await
        .expect("advance");
    assert_eq!(
        code(&sb.get("/rest/v1/leads/describe.json", &token).await),
        "602"
    );
    let fresh = sb.token().await;
    assert_ne!(fresh, token);
    assert_eq!(
        sb.get("/rest/v1/leads/describe.json", &fresh).await["success"],
        true
    );
    sb.stop().await;
}

#[tokio::test]
async fn describe_types_and_get_leads() {
    let sb = start("none").await;
    let t = sb.token().await;
    let d = sb.get("/rest/v1/leads/describe.json", &t).await;
    let fields: Vec<&str> = d["result"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["rest"]["name"].as_str())
        .collect();
    for f in [
        "id",
        "email",
        "leadScore",
        "updatedAt",
        "sfdcLeadId",
        "unsubscribed",
    ] {
        assert!(fields.contains(&f), "{f}");
    }
    let types = sb.get("/rest/v1/activities/types.json", &t).await;
    let ids: Vec<u64> = types["result"]
        .as_array()
        .expect("types")
        .iter()
        .filter_map(|x| x["id"].as_u64())
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 6, 7, 10, 11, 12, 13, 22]);

    let one = sb
        .get("/rest/v1/lead/5.json?fields=email,country,leadScore", &t)
        .await;
    assert_eq!(one["result"][0]["id"], 5);
    let by_id = sb
        .get(
            "/rest/v1/leads.json?filterType=id&filterValues=1,2,3&batchSize=2",
            &t,
        )
        .await;
    assert_eq!(by_id["result"].as_array().expect("page").len(), 2);
    assert_eq!(by_id["moreResult"], true);
    let token = by_id["nextPageToken"].as_str().expect("token");
    let page2 = sb
        .get(&format!("/rest/v1/leads.json?filterType=id&filterValues=1,2,3&batchSize=2&nextPageToken={token}"), &t)
        .await;
    assert_eq!(page2["result"][0]["id"], 3);
    assert_eq!(page2["moreResult"], false);
    // Emails match trimmed and case-insensitively.
    let admin = sb.admin("/_sandbox/leads/5").await;
    if let Some(email) = admin["email"].as_str() {
        let upper = email.trim().to_uppercase();
        let v = sb
            .get(
                &format!("/rest/v1/leads.json?filterType=email&filterValues={upper}"),
                &t,
            )
            .await;
        assert!(
            v["result"]
                .as_array()
                .expect("r")
                .iter()
                .any(|l| l["id"] == 5),
            "{v}"
        );
    }
    let bad = sb
        .get(
            "/rest/v1/leads.json?filterType=id&filterValues=1&fields=nope",
            &t,
        )
        .await;
    assert_eq!(code(&bad), "1006");
    // Long lookups go as POST with _method=GET.
    let form: Value = sb
        .http
        .post(sb.url("/rest/v1/leads.json?_method=GET"))
        .bearer_auth(&t)
        .form(&[
            ("filterType", "id"),
            ("filterValues", "7,8"),
            ("fields", "email"),
        ])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(form["result"].as_array().expect("r").len(), 2);
    let long = format!(
        "/rest/v1/leads.json?filterType=email&filterValues={}",
        "a".repeat(9000)
    );
    let resp = sb
        .http
        .get(sb.url(&long))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 414);
    sb.stop().await;
}

#[tokio::test]
async fn sync_leads_reports_per_record_results_in_order() {
    let sb = start("none").await;
    let t = sb.token().await;
    let seeded = sb.admin("/_sandbox/leads/3").await;
    let seeded_email = match seeded["email"].as_str() {
        Some(e) => e.trim().to_owned(),
        None => sb.admin("/_sandbox/leads/4").await["email"]
            .as_str()
            .expect("email")
            .trim()
            .to_owned(),
    };
    let body = json!({
        "action": "createOnly",
        "lookupField": "email",
        "input": [
            {"email": "new-1@example.com", "firstName": "Ada", "leadScore": 10},
            {"email": seeded_email, "firstName": "Dup"},
            {"firstName": "NoEmail"},
            {"email": "bad-score@example.com", "leadScore": "abc"},
            {"email": "unknown@example.com", "favouriteColour": "blue"},
        ]
    });
    let v = sb.post_json("/rest/v1/leads.json", &t, &body).await;
    assert_eq!(v["success"], true, "{v}");
    let r = v["result"].as_array().expect("result");
    assert_eq!(r[0]["status"], "created");
    let new_id = r[0]["id"].as_u64().expect("id");
    let reasons: Vec<&str> = r[1..]
        .iter()
        .map(|x| x["reasons"][0]["code"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(reasons, vec!["1005", "1002", "1003", "1006"]);
    assert!(r[1..].iter().all(|x| x["status"] == "skipped"));

    let upd = json!({"action": "updateOnly", "input": [
        {"email": "nobody@example.invalid", "firstName": "X"},
        {"email": " NEW-1@example.com ", "firstName": "Grace"},
    ]});
    let v = sb.post_json("/rest/v1/leads.json", &t, &upd).await;
    assert_eq!(v["result"][0]["reasons"][0]["code"], "1004");
    assert_eq!(v["result"][1]["status"], "updated");
    assert_eq!(v["result"][1]["id"].as_u64(), Some(new_id));
    let lead = sb.admin(&format!("/_sandbox/leads/{new_id}")).await;
    assert_eq!(lead["firstName"], "Grace");
    assert_eq!(lead["leadScore"], 10);

    let dup = json!({"action": "createDuplicate", "input": [{"email": "new-1@example.com"}]});
    assert_eq!(
        sb.post_json("/rest/v1/leads.json", &t, &dup).await["result"][0]["status"],
        "created"
    );
    let multi = json!({"input": [{"email": "new-1@example.com", "title": "CEO"}]});
    assert_eq!(
        sb.post_json("/rest/v1/leads.json", &t, &multi).await["result"][0]["reasons"][0]["code"],
        "1007"
    );
    let by_id = json!({"action": "updateOnly", "lookupField": "id", "input": [{"id": new_id, "title": "CTO"}, {"id": 99_999_999, "title": "x"}]});
    let v = sb.post_json("/rest/v1/leads.json", &t, &by_id).await;
    assert_eq!(v["result"][0]["status"], "updated");
    assert_eq!(v["result"][1]["reasons"][0]["code"], "1004");

    let leads = "/rest/v1/leads.json";
    let wrong_type: Value = sb
        .post_raw(leads, &t, "text/plain", "{}")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(code(&wrong_type), "612");
    let bad_json: Value = sb
        .post_raw(leads, &t, "application/json", "{not json")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(code(&bad_json), "609");
    let huge = sb
        .post_raw(leads, &t, "application/json", vec![b' '; 1_100_000])
        .await;
    assert_eq!(huge.status(), 413);
    let stats = sb.admin("/_sandbox/stats").await;
    assert!(stats["writesByVia"]["sync"].as_u64().expect("sync writes") >= 4);
    assert_eq!(stats["duplicateWrites"].as_array().expect("dups").len(), 0);
    sb.stop().await;
}

#[tokio::test]
async fn bulk_extract_lifecycle_with_range_and_checksum() {
    let sb = start("none").await;
    let t = sb.token().await;
    let create = json!({"fields": ["id", "email", "country", "leadScore", "createdAt"], "format": "CSV",
        "filter": {"createdAt": last_31_days()}});
    let v = sb
        .post_json("/bulk/v1/leads/export/create.json", &t, &create)
        .await;
    assert_eq!(v["result"][0]["status"], "Created", "{v}");
    let id = v["result"][0]["exportId"].as_str().expect("id").to_owned();
    let early = sb
        .http
        .get(sb.url(&format!("/bulk/v1/leads/export/{id}/file.json")))
        .bearer_auth(&t)
        .send()
        .await
        .expect("file");
    assert_eq!(early.status(), 404);
    let q = sb
        .post_json(
            &format!("/bulk/v1/leads/export/{id}/enqueue.json"),
            &t,
            &json!({}),
        )
        .await;
    assert_eq!(q["result"][0]["status"], "Queued", "{q}");
    let again = sb
        .post_json(
            &format!("/bulk/v1/leads/export/{id}/enqueue.json"),
            &t,
            &json!({}),
        )
        .await;
    assert_eq!(code(&again), "1029");
    assert_eq!(again["errors"][0]["message"], "Job already queued");

    // Another API user cannot see the job.
    let other = sb.token_for(OTHER_ID, OTHER_SECRET).await;
    assert_eq!(
        sb.get(&format!("/bulk/v1/leads/export/{id}/status.json"), &other)
            .await["success"],
        false
    );

    let done = sb.wait_export("leads", &id, &t).await;
    let job = &done["result"][0];
    assert_eq!(job["status"], "Completed", "{done}");
    for k in ["createdAt", "queuedAt", "startedAt", "finishedAt"] {
        assert!(job[k].is_string(), "{k}");
    }
    let resp = sb
        .http
        .get(sb.url(&format!("/bulk/v1/leads/export/{id}/file.json")))
        .bearer_auth(&t)
        .send()
        .await
        .expect("file");
    assert_eq!(resp.status(), 200);
    let file = resp.bytes().await.expect("bytes");
    assert_eq!(Some(file.len() as u64), job["fileSize"].as_u64());
    let hex: String = Sha256::digest(&file)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        job["fileChecksum"].as_str(),
        Some(format!("sha256:{hex}").as_str())
    );
    let text = String::from_utf8(file.to_vec()).expect("utf8");
    assert!(
        text.starts_with("id,email,country,leadScore,createdAt\n"),
        "{}",
        &text[..80.min(text.len())]
    );
    let rows = text.lines().count() as u64 - 1;
    assert_eq!(Some(rows), job["numberOfRecords"].as_u64());
    assert!(
        rows > 50,
        "2000 leads over 400 days → ~150 in 31 days, got {rows}"
    );
    assert!(text.contains(",null"), "nulls are the literal null");

    let part = sb
        .http
        .get(sb.url(&format!("/bulk/v1/leads/export/{id}/file.json")))
        .bearer_auth(&t)
        .header("Range", "bytes=10-109")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok()),
        Some(format!("bytes 10-109/{}", file.len()).as_str())
    );
    assert_eq!(
        part.headers()
            .get("accept-ranges")
            .and_then(|v| v.to_str().ok()),
        Some("bytes")
    );
    assert_eq!(&part.bytes().await.expect("b")[..], &file[10..110]);
    let other_file = sb
        .http
        .get(sb.url(&format!("/bulk/v1/leads/export/{id}/file.json")))
        .bearer_auth(&other)
        .send()
        .await
        .expect("file");
    assert_eq!(other_file.status(), 404);

    let list = sb
        .get("/bulk/v1/leads/export.json?status=completed", &t)
        .await;
    assert_eq!(list["result"].as_array().expect("list").len(), 1);

    // Activities.
    let act = json!({"filter": {"createdAt": last_31_days(), "activityTypeIds": [1, 12]}});
    let v = sb
        .post_json("/bulk/v1/activities/export/create.json", &t, &act)
        .await;
    let aid = v["result"][0]["exportId"].as_str().expect("id").to_owned();
    sb.post_json(
        &format!("/bulk/v1/activities/export/{aid}/enqueue.json"),
        &t,
        &json!({}),
    )
    .await;
    let done = sb.wait_export("activities", &aid, &t).await;
    assert_eq!(done["result"][0]["status"], "Completed");
    let text = sb
        .http
        .get(sb.url(&format!("/bulk/v1/activities/export/{aid}/file.json")))
        .bearer_auth(&t)
        .send()
        .await
        .expect("file")
        .text()
        .await
        .expect("text");
    assert!(text.starts_with(
        "marketoGUID,leadId,activityDate,activityTypeId,campaignId,primaryAttributeValueId,primaryAttributeValue,attributes\n"
    ));
    assert!(
        text.lines()
            .skip(1)
            .all(|l| l.split(',').nth(3).is_some_and(|t| t == "1" || t == "12"))
    );

    // Filters are validated.
    let wide = json!({"fields": ["id"], "filter": {"createdAt": {"startAt": "2024-01-01T00:00:00Z", "endAt": "2024-03-01T00:00:00Z"}}});
    assert_eq!(
        sb.post_json("/bulk/v1/leads/export/create.json", &t, &wide)
            .await["success"],
        false
    );
    let two = json!({"fields": ["id"], "filter": {"createdAt": last_31_days(), "updatedAt": last_31_days()}});
    assert_eq!(
        sb.post_json("/bulk/v1/leads/export/create.json", &t, &two)
            .await["success"],
        false
    );
    let cancel_me = sb
        .post_json("/bulk/v1/leads/export/create.json", &t, &create)
        .await;
    let cid = cancel_me["result"][0]["exportId"]
        .as_str()
        .expect("id")
        .to_owned();
    let c = sb
        .post_json(
            &format!("/bulk/v1/leads/export/{cid}/cancel.json"),
            &t,
            &json!({}),
        )
        .await;
    assert_eq!(c["result"][0]["status"], "Cancelled");
    sb.stop().await;
}

#[tokio::test]
async fn export_queue_limits() {
    let limits = Limits {
        job_latency: Duration::from_secs(30),
        ..Limits::default()
    };
    let sb = start_with("none", limits, 500).await;
    let t = sb.token().await;
    let create = json!({"fields": ["id"], "filter": {"createdAt": last_31_days()}});
    let mut last = Value::Null;
    for i in 0..11 {
        let v = sb
            .post_json("/bulk/v1/leads/export/create.json", &t, &create)
            .await;
        let id = v["result"][0]["exportId"].as_str().expect("id").to_owned();
        last = sb
            .post_json(
                &format!("/bulk/v1/leads/export/{id}/enqueue.json"),
                &t,
                &json!({}),
            )
            .await;
        if i < 10 {
            assert_eq!(last["success"], true, "{i}: {last}");
        }
    }
    assert_eq!(code(&last), "1029");
    assert_eq!(last["errors"][0]["message"], "Too many jobs in queue");
    sb.stop().await;
}

#[tokio::test]
async fn bulk_import_with_failures_and_warnings() {
    let sb = start("partial-import").await;
    let t = sb.token().await;
    let csv = "email,firstName,leadScore\n\
               ok-1@example.com,Ok,10\n\
               not-an-email,Warn,5\n\
               bad-score@example.com,Bad,abc\n\
               someone@blocked.example,Blocked,1\n\
               \"o'brien,jr@example.com\",\"Smith, \"\"Jr\"\"\",7\n";
    let v = sb.import_csv(&t, csv, "email").await;
    assert_eq!(v["result"][0]["status"], "Queued", "{v}");
    let batch = v["result"][0]["batchId"].as_u64().expect("batch");
    let done = sb.wait_import(batch, &t).await;
    let r = &done["result"][0];
    assert_eq!(r["status"], "Complete", "{done}");
    assert_eq!(r["numOfLeadsProcessed"], 3);
    assert_eq!(r["numOfRowsFailed"], 2);
    assert_eq!(r["numOfRowsWithWarning"], 1);
    assert_eq!(
        r["message"],
        "Import completed with errors, 3 records imported (3 members), 2 failed"
    );
    let failures = sb
        .http
        .get(sb.url(&format!("/bulk/v1/leads/batch/{batch}/failures.json")))
        .bearer_auth(&t)
        .send()
        .await
        .expect("failures")
        .text()
        .await
        .expect("text");
    let mut lines = failures.lines();
    assert_eq!(
        lines.next(),
        Some("email,firstName,leadScore,Import Failure Reason")
    );
    assert!(
        failures.contains("bad-score@example.com,Bad,abc,Invalid data type in field Lead Score"),
        "{failures}"
    );
    assert!(failures.contains("blocked.example"), "{failures}");
    let warnings = sb
        .http
        .get(sb.url(&format!("/bulk/v1/leads/batch/{batch}/warnings.json")))
        .bearer_auth(&t)
        .send()
        .await
        .expect("warnings")
        .text()
        .await
        .expect("text");
    assert_eq!(
        warnings,
        "email,firstName,leadScore,Import Warning Reason\nnot-an-email,Warn,5,Invalid email address\n"
    );
    let found = sb
        .get(
            "/rest/v1/leads.json?filterType=email&filterValues=ok-1@example.com&fields=leadScore",
            &t,
        )
        .await;
    assert_eq!(found["result"][0]["leadScore"], 10);

    // lookupField=id updates only.
    let by_id = sb
        .import_csv(&t, "id,leadScore\n1,99\n99999999,5\n", "id")
        .await;
    let batch = by_id["result"][0]["batchId"].as_u64().expect("batch");
    let done = sb.wait_import(batch, &t).await;
    assert_eq!(done["result"][0]["numOfLeadsProcessed"], 1);
    assert_eq!(done["result"][0]["numOfRowsFailed"], 1);
    assert_eq!(sb.admin("/_sandbox/leads/1").await["leadScore"], 99);
    let stats = sb.admin("/_sandbox/stats").await;
    assert_eq!(stats["writesByVia"]["import"], 4);

    // Malformed multipart → 613; file over 10 MB → 413.
    let bad: Value = sb
        .http
        .post(sb.url("/bulk/v1/leads.json?format=csv"))
        .bearer_auth(&t)
        .header("content-type", "multipart/form-data; boundary=xyz")
        .body("garbage")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(code(&bad), "613");
    let big = "email\n".to_owned() + &"x@example.com\n".repeat(800_000);
    let part = reqwest::multipart::Part::bytes(big.into_bytes()).file_name("big.csv");
    let resp = sb
        .http
        .post(sb.url("/bulk/v1/leads.json?format=csv"))
        .bearer_auth(&t)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 413);
    sb.stop().await;
}

#[tokio::test]
async fn too_many_imports() {
    let limits = Limits {
        job_latency: Duration::from_secs(30),
        ..Limits::default()
    };
    let sb = start_with("none", limits, 100).await;
    let t = sb.token().await;
    let mut last = Value::Null;
    for _ in 0..11 {
        last = sb.import_csv(&t, "email\na@example.com\n", "email").await;
    }
    assert_eq!(code(&last), "1016");
    assert_eq!(last["errors"][0]["message"], "Too many imports");
    sb.stop().await;
}

#[tokio::test]
async fn rate_limit_and_concurrency_faults() {
    let sb = start("none").await;
    let t = sb.token().await;
    sb.admin_put_faults(
        &json!({"rateLimit": {"callsPer20s": 6, "concurrent": 2, "latencyMs": 300}}),
    )
    .await;
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let http = sb.http.clone();
        let url = sb.url("/rest/v1/leads/describe.json");
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let v: Value = http
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .expect("send")
                .json()
                .await
                .expect("json");
            v
        }));
    }
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(code(&task.await.expect("join")).to_owned());
    }
    assert!(codes.iter().any(|c| c == "615"), "{codes:?}");
    let mut saw_606 = None;
    for _ in 0..8 {
        let v = sb.get("/rest/v1/leads/describe.json", &t).await;
        if code(&v) == "606" {
            saw_606 = Some(v);
            break;
        }
    }
    let v = saw_606.expect("606 within 8 sequential calls");
    assert_eq!(
        v["errors"][0]["message"],
        "Max rate limit '6' exceeded with in '20' secs"
    );
    let stats = sb.admin("/_sandbox/stats").await;
    assert!(stats["errorsByCode"]["606"].as_u64() >= Some(1));
    assert!(stats["errorsByCode"]["615"].as_u64() >= Some(1));
    sb.stop().await;
}

#[tokio::test]
async fn another_integration_takes_its_share_of_a_scaled_window() {
    let limits = Limits {
        rate_window: Duration::from_millis(600),
        ..fast_limits()
    };
    let sb = start_with("none", limits, 100).await;
    let t = sb.token().await;
    sb.admin_put_faults(&json!({"sharedLimit": {"otherCallsPer20s": 96}}))
        .await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(code(&sb.get("/rest/v1/leads/describe.json", &t).await).to_owned());
    }
    // 100 - 96 = 4 calls per window are left; the fifth is refused, in Marketo's words for the
    // instance's limit.
    assert_eq!(codes[..4], ["", "", "", ""], "{codes:?}");
    assert_eq!(codes[4..], ["606", "606"], "{codes:?}");
    let v = sb.get("/rest/v1/leads/describe.json", &t).await;
    assert_eq!(
        v["errors"][0]["message"],
        "Max rate limit '100' exceeded with in '0.6' secs"
    );
    // The window rolls on: calls go through again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        sb.get("/rest/v1/leads/describe.json", &t).await["success"],
        true
    );
    // The other integration holds every concurrent slot: 615.
    sb.admin_put_faults(&json!({"sharedLimit": {"otherCallsPer20s": 0, "otherConcurrent": 10}}))
        .await;
    assert_eq!(
        code(&sb.get("/rest/v1/leads/describe.json", &t).await),
        "615"
    );
    // It stops: the whole instance is Drover's again.
    sb.admin_put_faults(&json!({})).await;
    for _ in 0..10 {
        assert_eq!(
            sb.get("/rest/v1/leads/describe.json", &t).await["success"],
            true
        );
    }
    sb.stop().await;
}

#[tokio::test]
async fn quota_faults() {
    let sb = start("quota").await;
    let t = sb.token().await;
    let v = sb.get("/rest/v1/leads/describe.json", &t).await;
    assert_eq!(code(&v), "607");
    assert_eq!(v["errors"][0]["message"], "Daily quota reached");
    sb.admin_put_faults(&json!({"quota": {"dailyCalls": 1000, "exportDailyBytes": 0}}))
        .await;
    let create = json!({"fields": ["id"], "filter": {"createdAt": last_31_days()}});
    let v = sb
        .post_json("/bulk/v1/leads/export/create.json", &t, &create)
        .await;
    assert_eq!(code(&v), "1029");
    assert_eq!(v["errors"][0]["message"], "Export daily quota exceeded");
    // The quota resets at midnight Central time.
    sb.admin_put_faults(&json!({"quota": {"dailyCalls": 2, "exportDailyBytes": 0}}))
        .await;
    let _ = sb
        .http
        .post(sb.url("/_sandbox/reset"))
        .send()
        .await
        .expect("reset");
    assert_eq!(
        sb.get("/rest/v1/leads/describe.json", &t).await["success"],
        true
    );
    assert_eq!(
        sb.get("/rest/v1/leads/describe.json", &t).await["success"],
        true
    );
    assert_eq!(
        code(&sb.get("/rest/v1/leads/describe.json", &t).await),
        "607"
    );
    sb.http
        .post(sb.url("/_sandbox/clock/advance"))
        .json(&json!({"seconds": 86_400}))
        .send()
        .await
        .expect("advance");
    let t = sb.token().await;
    assert_eq!(
        sb.get("/rest/v1/leads/describe.json", &t).await["success"],
        true
    );
    sb.stop().await;
}

#[tokio::test]
async fn faults_switch_at_run_time_and_errors_never_write() {
    let sb = start("none").await;
    let t = sb.token().await;
    assert_eq!(
        sb.admin("/_sandbox/faults").await,
        json!({})
            .as_object()
            .map_or(Value::Null, |_| sb_faults_none())
    );
    sb.admin_put_faults(&json!({"serverErrors": {"probability": 1.0}}))
        .await;
    let resp = sb
        .http
        .get(sb.url("/rest/v1/leads/describe.json"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("text");
    assert!(
        status == 502
            || ["604", "608", "611", "713"]
                .iter()
                .any(|c| text.contains(c)),
        "{status} {text}"
    );
    let sync = json!({"input": [{"email": "never@example.com"}]});
    for _ in 0..5 {
        let r = sb
            .http
            .post(sb.url("/rest/v1/leads.json"))
            .bearer_auth(&t)
            .json(&sync)
            .send()
            .await
            .expect("send");
        let _ = r.text().await;
    }
    assert_eq!(sb.admin("/_sandbox/stats").await["writes"], 0);
    sb.admin_put_faults(&json!("none")).await;
    assert_eq!(
        sb.get("/rest/v1/leads/describe.json", &t).await["success"],
        true
    );

    // With 50% errors, retrying each write until it succeeds writes each lead exactly once.
    sb.admin_put_faults(&json!({"serverErrors": {"probability": 0.5}}))
        .await;
    for i in 0..10 {
        let body = json!({"input": [{"email": format!("retry-{i}@example.com")}]});
        loop {
            let r = sb
                .http
                .post(sb.url("/rest/v1/leads.json"))
                .bearer_auth(&t)
                .json(&body)
                .send()
                .await
                .expect("send");
            if r.status() == 200 {
                let v: Value = r.json().await.expect("json");
                if v["success"] == true {
                    break;
                }
            }
        }
    }
    let stats = sb.admin("/_sandbox/stats").await;
    assert_eq!(stats["writes"], 10);
    assert_eq!(stats["maxWritesPerLead"], 1);
    assert!(
        !stats["errorsByCode"]
            .as_object()
            .expect("errors")
            .is_empty()
            || stats["httpStatus"]["502"].as_u64() > Some(0)
    );
    sb.stop().await;
}

fn sb_faults_none() -> Value {
    json!({
        "tokenExpiry": null, "rateLimit": null, "sharedLimit": null, "quota": null, "serverErrors": null,
        "timeouts": null, "slowJobs": null, "partialImport": null, "brokenDownloads": null,
        "statusLag": null, "upsertRace": null
    })
}

#[tokio::test]
async fn token_dies_between_enqueue_and_download() {
    let sb = start("token-expiry").await;
    let t = sb.token().await;
    let create = json!({"fields": ["id", "email"], "filter": {"createdAt": last_31_days()}});
    let v = sb
        .post_json("/bulk/v1/leads/export/create.json", &t, &create)
        .await;
    let id = v["result"][0]["exportId"].as_str().expect("id").to_owned();
    sb.post_json(
        &format!("/bulk/v1/leads/export/{id}/enqueue.json"),
        &t,
        &json!({}),
    )
    .await;
    let done = sb.wait_export("leads", &id, &t).await;
    assert_eq!(done["result"][0]["status"], "Completed");
    let dead: Value = sb
        .http
        .get(sb.url(&format!("/bulk/v1/leads/export/{id}/file.json")))
        .bearer_auth(&t)
        .send()
        .await
        .expect("file")
        .json()
        .await
        .expect("json");
    assert_eq!(code(&dead), "602");
    let fresh = sb.token().await;
    assert_ne!(fresh, t);
    let file = sb
        .http
        .get(sb.url(&format!("/bulk/v1/leads/export/{id}/file.json")))
        .bearer_auth(&fresh)
        .send()
        .await
        .expect("file");
    assert_eq!(file.status(), 200);
    // Tokens also die after a few calls.
    let mut expired = false;
    for _ in 0..30 {
        if code(&sb.get("/rest/v1/leads/describe.json", &fresh).await) == "602" {
            expired = true;
            break;
        }
    }
    assert!(expired);
    sb.stop().await;
}

#[tokio::test]
async fn broken_downloads_can_be_resumed() {
    let sb = start("broken-downloads").await;
    let t = sb.token().await;
    let create =
        json!({"fields": ["id", "email", "company"], "filter": {"createdAt": last_31_days()}});
    let v = sb
        .post_json("/bulk/v1/leads/export/create.json", &t, &create)
        .await;
    let id = v["result"][0]["exportId"].as_str().expect("id").to_owned();
    sb.post_json(
        &format!("/bulk/v1/leads/export/{id}/enqueue.json"),
        &t,
        &json!({}),
    )
    .await;
    let done = sb.wait_export("leads", &id, &t).await;
    let size = done["result"][0]["fileSize"].as_u64().expect("size") as usize;
    let mut got: Vec<u8> = Vec::new();
    let mut broken = 0;
    while got.len() < size {
        let sent = sb
            .http
            .get(sb.url(&format!("/bulk/v1/leads/export/{id}/file.json")))
            .bearer_auth(&t)
            .header("Range", format!("bytes={}-", got.len()))
            .send()
            .await;
        // A cut can also surface before the headers are read.
        let Ok(mut resp) = sent else {
            broken += 1;
            continue;
        };
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => got.extend_from_slice(&c),
                Ok(None) => break,
                Err(_) => {
                    broken += 1;
                    break;
                }
            }
        }
        assert!(broken < 50);
    }
    let hex: String = Sha256::digest(&got)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        done["result"][0]["fileChecksum"].as_str(),
        Some(format!("sha256:{hex}").as_str())
    );
    sb.stop().await;
}

#[tokio::test]
async fn usage_stats() {
    let sb = start("none").await;
    let t = sb.token().await;
    sb.get("/rest/v1/leads/describe.json", &t).await;
    let u = sb.get("/rest/v1/stats/usage.json", &t).await;
    assert!(u["result"][0]["total"].as_u64() >= Some(1), "{u}");
    assert_eq!(u["result"][0]["users"][0]["userId"], common::ID);
    let stats = sb.admin("/_sandbox/stats").await;
    assert!(
        stats["callsByEndpoint"]["GET /rest/v1/leads/describe.json"].as_u64() >= Some(1),
        "{stats}"
    );
    sb.stop().await;
}

#[tokio::test]
async fn upsert_race_creates_a_lead_per_close_upsert_of_a_new_key() {
    let sb = start("upsert-race").await;
    let t = sb.token().await;
    let leads = "/rest/v1/leads.json";
    let before = sb.admin("/_sandbox/stats").await["leads"]
        .as_u64()
        .expect("leads");
    // One call repeating a new key three times, and a seeded lead's key once.
    let seeded = sb.admin("/_sandbox/leads/2").await["email"]
        .as_str()
        .map(|e| e.trim().to_owned());
    let mut input = vec![
        json!({"email": "race@example.com", "firstName": "A"}),
        json!({"email": " RACE@example.com", "firstName": "B"}),
        json!({"email": "race@example.com", "firstName": "C"}),
    ];
    if let Some(e) = &seeded {
        input.push(json!({"email": e, "title": "Seeded"}));
    }
    let v = sb
        .post_json(leads, &t, &json!({"lookupField": "email", "input": input}))
        .await;
    let r = v["result"].as_array().expect("result");
    let ids: Vec<u64> = r[..3]
        .iter()
        .map(|x| {
            assert_eq!(x["status"], "created", "{v}");
            x["id"].as_u64().expect("id")
        })
        .collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");
    if seeded.is_some() {
        assert_ne!(
            r[3]["status"], "created",
            "an existing key does not race: {v}"
        );
    }
    // A call within the window creates yet another lead.
    let again = json!({"input": [{"email": "race@example.com", "firstName": "D"}]});
    let v = sb.post_json(leads, &t, &again).await;
    assert_eq!(v["result"][0]["status"], "created", "{v}");
    let after = sb.admin("/_sandbox/stats").await["leads"]
        .as_u64()
        .expect("leads");
    assert_eq!(after, before + 4);
    // Past the window the key matches four leads: reads return all of them, upserts get 1007.
    let moved = reqwest::Client::new()
        .post(sb.url("/_sandbox/clock/advance"))
        .json(&json!({"seconds": 3}))
        .send()
        .await
        .expect("advance");
    assert!(moved.status().is_success());
    let found = sb
        .get(
            "/rest/v1/leads.json?filterType=email&filterValues=race@example.com",
            &t,
        )
        .await;
    assert_eq!(found["result"].as_array().map(Vec::len), Some(4), "{found}");
    let v = sb.post_json(leads, &t, &again).await;
    assert_eq!(v["result"][0]["reasons"][0]["code"], "1007", "{v}");
    // The ordered call log shows the calls as made.
    let calls = sb.admin("/_sandbox/calls").await;
    let calls: Vec<&str> = calls["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        calls,
        vec![
            "POST /rest/v1/leads.json",
            "POST /rest/v1/leads.json",
            "GET /rest/v1/leads.json",
            "POST /rest/v1/leads.json"
        ]
    );
    sb.stop().await;
}
