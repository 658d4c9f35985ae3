//! The sandbox at Marketo's edges: status that refreshes once a minute, gzip on REST answers
//! only, Describe Lead2's searchable fields and 1011 on other lookups.

mod common;

use std::time::{Duration, Instant};

use common::{code, last_31_days, start};
use serde_json::{Value, json};

/// Creates and enqueues a lead export; returns its id.
async fn enqueued_export(sb: &common::Sb, t: &str) -> String {
    let create = json!({"fields": ["id", "email"], "format": "CSV",
        "filter": {"createdAt": last_31_days()}});
    let v = sb
        .post_json("/bulk/v1/leads/export/create.json", t, &create)
        .await;
    let id = v["result"][0]["exportId"].as_str().expect("id").to_owned();
    let q = sb
        .post_json(
            &format!("/bulk/v1/leads/export/{id}/enqueue.json"),
            t,
            &json!({}),
        )
        .await;
    assert_eq!(q["success"], true, "{q}");
    id
}

#[tokio::test]
async fn status_lag_reports_the_job_as_of_the_last_refresh() {
    let sb = start("status-lag").await;
    let t = sb.token().await;
    let id = enqueued_export(&sb, &t).await;
    // The job really completes (the sandbox's own job table says so)…
    let deadline = Instant::now() + Duration::from_secs(30);
    while sb.admin("/_sandbox/stats").await["exports"]["Completed"] != 1 {
        assert!(Instant::now() < deadline, "the export never completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // …but the status endpoint still shows it as it was at creation, the last refresh.
    let path = format!("/bulk/v1/leads/export/{id}/status.json");
    let before = sb.get(&path, &t).await;
    assert_eq!(before["result"][0]["status"], "Created", "{before}");
    assert!(before["result"][0].get("fileSize").is_none(), "{before}");
    assert!(before["result"][0].get("queuedAt").is_none(), "{before}");
    // 59 s later it still has not refreshed; at 60 s it has.
    let advance = |secs: i64| {
        sb.http
            .post(sb.url("/_sandbox/clock/advance"))
            .json(&json!({ "seconds": secs }))
            .send()
    };
    advance(59).await.expect("advance");
    assert_eq!(sb.get(&path, &t).await["result"][0]["status"], "Created");
    advance(1).await.expect("advance");
    let after = sb.get(&path, &t).await;
    assert_eq!(after["result"][0]["status"], "Completed", "{after}");
    assert!(after["result"][0]["fileSize"].as_u64().is_some(), "{after}");
    assert!(
        after["result"][0]["numberOfRecords"].as_u64().is_some(),
        "{after}"
    );
    sb.stop().await;
}

#[tokio::test]
async fn without_status_lag_the_status_is_current() {
    let sb = start("none").await;
    let t = sb.token().await;
    let id = enqueued_export(&sb, &t).await;
    let done = sb.wait_export("leads", &id, &t).await;
    assert_eq!(done["result"][0]["status"], "Completed", "{done}");
    sb.stop().await;
}

/// A client that does not decompress, so the bytes on the wire can be seen.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client")
}

#[tokio::test]
async fn rest_answers_of_1024_bytes_or_more_are_gzipped_when_asked() {
    let sb = start("none").await;
    let t = sb.token().await;
    let raw = raw_client();
    let ids: Vec<String> = (1..=300).map(|i| i.to_string()).collect();
    let url = sb.url("/rest/v1/leads.json");
    let query = [
        ("filterType", "id".to_owned()),
        ("filterValues", ids.join(",")),
        (
            "fields",
            "id,email,firstName,lastName,company,country".to_owned(),
        ),
    ];
    let plain = raw
        .get(&url)
        .bearer_auth(&t)
        .query(&query)
        .send()
        .await
        .expect("plain");
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.expect("body");
    assert!(plain.len() > 10_000, "{}", plain.len());
    let gz = raw
        .get(&url)
        .bearer_auth(&t)
        .header("accept-encoding", "gzip")
        .query(&query)
        .send()
        .await
        .expect("gzip");
    assert_eq!(
        gz.headers().get("content-encoding").map(|v| v.as_bytes()),
        Some(&b"gzip"[..])
    );
    let gz = gz.bytes().await.expect("body");
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(
        gz.len() * 3 < plain.len(),
        "{} vs {}",
        gz.len(),
        plain.len()
    );

    // A small answer stays plain even when gzip is asked for.
    let small = raw
        .get(sb.url("/rest/v1/lead/1.json"))
        .bearer_auth(&t)
        .header("accept-encoding", "gzip")
        .query(&[("fields", "id")])
        .send()
        .await
        .expect("small");
    assert!(small.headers().get("content-encoding").is_none());
    let small = small.bytes().await.expect("body");
    assert!(small.len() < 1024, "{}", small.len());
    assert_eq!(sb.admin("/_sandbox/stats").await["gzipResponses"], 1);
    sb.stop().await;
}

#[tokio::test]
async fn bulk_files_are_never_compressed_and_keep_range() {
    let sb = start("none").await;
    let t = sb.token().await;
    let id = enqueued_export(&sb, &t).await;
    let done = sb.wait_export("leads", &id, &t).await;
    let size = done["result"][0]["fileSize"].as_u64().expect("size");
    assert!(size > 2048, "{size}");
    let raw = raw_client();
    let file = sb.url(&format!("/bulk/v1/leads/export/{id}/file.json"));
    let whole = raw
        .get(&file)
        .bearer_auth(&t)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("file");
    assert_eq!(whole.status(), 200);
    assert!(whole.headers().get("content-encoding").is_none());
    let whole = whole.bytes().await.expect("body");
    assert_eq!(whole.len() as u64, size);
    let part = raw
        .get(&file)
        .bearer_auth(&t)
        .header("accept-encoding", "gzip")
        .header("range", "bytes=1000-")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), 206);
    assert!(part.headers().get("content-encoding").is_none());
    assert_eq!(
        part.headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok()),
        Some(format!("bytes 1000-{}/{size}", size - 1).as_str())
    );
    let part = part.bytes().await.expect("body");
    assert_eq!(&part[..], &whole[1000..]);
    assert_eq!(sb.admin("/_sandbox/stats").await["gzipResponses"], 0);
    sb.stop().await;
}

#[tokio::test]
async fn describe2_lists_the_searchable_fields_and_other_lookups_get_1011() {
    let sb = start("none").await;
    let t = sb.token().await;
    let v = sb.get("/rest/v1/leads/describe2.json", &t).await;
    assert_eq!(v["success"], true, "{v}");
    let entry = &v["result"][0];
    assert_eq!(entry["name"], "API Lead");
    let keys: Vec<Vec<String>> =
        serde_json::from_value(entry["searchableFields"].clone()).expect("list of lists");
    for f in ["id", "email", "sfdcLeadId", "sfdcContactId"] {
        assert!(keys.contains(&vec![f.to_owned()]), "{f} in {keys:?}");
    }
    assert!(!keys.iter().flatten().any(|f| f == "firstName"), "{keys:?}");
    let fields = entry["fields"].as_array().expect("fields");
    let first = fields
        .iter()
        .find(|f| f["name"] == "firstName")
        .expect("firstName described");
    for key in ["displayName", "dataType", "updateable", "crmManaged"] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }
    assert_eq!(
        fields.iter().find(|f| f["name"] == "id").expect("id")["updateable"],
        false
    );

    // What is not searchable is refused as Marketo does: 1011, for reads and writes.
    let by_name = sb
        .get(
            "/rest/v1/leads.json?filterType=firstName&filterValues=Ann",
            &t,
        )
        .await;
    assert_eq!(code(&by_name), "1011", "{by_name}");
    let sync = sb
        .post_json(
            "/rest/v1/leads.json",
            &t,
            &json!({"lookupField": "firstName", "input": [{"firstName": "Ann"}]}),
        )
        .await;
    assert_eq!(code(&sync), "1011", "{sync}");
    let stats: Value = sb.admin("/_sandbox/stats").await;
    assert_eq!(stats["writes"], 0, "{stats}");
    sb.stop().await;
}
