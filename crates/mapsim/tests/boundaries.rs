//! Leads and activities placed at exact instants through the admin API, and the bulk
//! filters' `{startAt, endAt}` taken inclusively at both ends (Marketo does not document an
//! exclusive end, so the sandbox reproduces the reading that exports a boundary record twice).

mod common;

use common::{Sb, code, start};
use serde_json::{Value, json};

async fn place_new(sb: &Sb, body: Value) -> u64 {
    let resp = sb
        .http
        .post(sb.url("/_sandbox/leads"))
        .json(&body)
        .send()
        .await
        .expect("place");
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.expect("json");
    v["id"].as_u64().expect("id")
}

/// Runs an export of `obj` with `body` to the end; the file's rows (header first).
async fn export(sb: &Sb, obj: &str, token: &str, body: &Value) -> Vec<String> {
    let v = sb
        .post_json(&format!("/bulk/v1/{obj}/export/create.json"), token, body)
        .await;
    let id = v["result"][0]["exportId"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned();
    sb.post_json(
        &format!("/bulk/v1/{obj}/export/{id}/enqueue.json"),
        token,
        &json!({}),
    )
    .await;
    let done = sb.wait_export(obj, &id, token).await;
    assert_eq!(done["result"][0]["status"], "Completed", "{done}");
    let text = sb
        .http
        .get(sb.url(&format!("/bulk/v1/{obj}/export/{id}/file.json")))
        .bearer_auth(token)
        .send()
        .await
        .expect("file")
        .text()
        .await
        .expect("text");
    text.lines().map(str::to_owned).collect()
}

fn range(start: &str, end: &str) -> Value {
    json!({"startAt": start, "endAt": end})
}

#[tokio::test]
async fn placed_records_on_both_ends_of_a_filter_are_exported() {
    let sb = start("none").await;
    let t = sb.token().await;
    // Far after every seeded timestamp (those end at the sandbox's start), so only these match.
    let at_start = place_new(
        &sb,
        json!({"email": "start@example.com", "createdAt": "2030-01-01T10:00:00Z", "updatedAt": "2030-01-01T10:00:00Z"}),
    )
    .await;
    let inside = place_new(
        &sb,
        json!({"email": "inside@example.com", "createdAt": "2030-01-01T10:59:59Z", "updatedAt": "2030-01-01T10:59:59Z"}),
    )
    .await;
    let at_end = place_new(
        &sb,
        json!({"email": "end@example.com", "createdAt": "2030-01-01T11:00:00Z", "updatedAt": "2030-01-01T11:00:00Z"}),
    )
    .await;
    let after = place_new(
        &sb,
        json!({"email": "after@example.com", "createdAt": "2030-01-01T11:00:01Z", "updatedAt": "2030-01-01T11:00:01Z"}),
    )
    .await;
    // Offsets are read as instants: 12:00+01:00 is 11:00Z.
    for filter in ["updatedAt", "createdAt"] {
        let rows = export(
            &sb,
            "leads",
            &t,
            &json!({"fields": ["id", "updatedAt"], "filter": {filter: range("2030-01-01T10:00:00Z", "2030-01-01T12:00:00+01:00")}}),
        )
        .await;
        assert_eq!(rows[0], "id,updatedAt");
        let ids: Vec<u64> = rows[1..]
            .iter()
            .filter_map(|r| r.split(',').next().and_then(|s| s.parse().ok()))
            .collect();
        assert_eq!(ids, vec![at_start, inside, at_end], "{filter}: {rows:?}");
        assert!(!ids.contains(&after));
    }
    assert!(
        export(
            &sb,
            "leads",
            &t,
            &json!({"fields": ["id"], "filter": {"createdAt": range("2030-01-01T11:00:00Z", "2030-01-01T11:00:00Z")}}),
        )
        .await
        .contains(&at_end.to_string()),
        "a zero-length range still holds the record on it"
    );

    // Placing an existing lead sets exactly what is given; no write is logged, updatedAt
    // moves only because it is given.
    let resp = sb
        .http
        .put(sb.url(&format!("/_sandbox/leads/{inside}")))
        .json(&json!({"country": "Narnia", "phone": "723.874.5907 x12", "updatedAt": "2030-01-01T10:30:00Z"}))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 200);
    let lead = sb.admin(&format!("/_sandbox/leads/{inside}")).await;
    assert_eq!(lead["country"], "Narnia");
    assert_eq!(lead["phone"], "723.874.5907 x12");
    assert_eq!(lead["updatedAt"], "2030-01-01T10:30:00Z");
    assert_eq!(lead["createdAt"], "2030-01-01T10:59:59Z");
    assert_eq!(lead["_writeCount"], 0);
    // The email index follows placed emails.
    let found = sb
        .get(
            "/rest/v1/leads.json?filterType=email&filterValues=END@example.com",
            &t,
        )
        .await;
    assert_eq!(found["result"][0]["id"].as_u64(), Some(at_end), "{found}");

    // Mistakes are refused, naming the problem.
    for (method, path, body, want) in [
        (
            "post",
            "/_sandbox/leads".to_owned(),
            json!({"id": 5}),
            "`id`",
        ),
        (
            "post",
            "/_sandbox/leads".to_owned(),
            json!({"colour": "red"}),
            "colour",
        ),
        (
            "post",
            "/_sandbox/leads".to_owned(),
            json!({"updatedAt": "yesterday"}),
            "Updated At",
        ),
        (
            "put",
            "/_sandbox/leads/999999".to_owned(),
            json!({"country": "X"}),
            "not found",
        ),
        (
            "post",
            "/_sandbox/activities".to_owned(),
            json!({"leadId": at_end, "activityTypeId": 99, "activityDate": "2030-01-01T10:00:00Z"}),
            "99",
        ),
        (
            "post",
            "/_sandbox/activities".to_owned(),
            json!({"leadId": 999_999, "activityTypeId": 1, "activityDate": "2030-01-01T10:00:00Z"}),
            "not found",
        ),
        (
            "post",
            "/_sandbox/activities".to_owned(),
            json!({"leadId": at_end, "activityTypeId": 1, "activityDate": "soon"}),
            "soon",
        ),
    ] {
        let req = if method == "post" {
            sb.http.post(sb.url(&path))
        } else {
            sb.http.put(sb.url(&path))
        };
        let resp = req.json(&body).send().await.expect("send");
        assert!(
            resp.status().is_client_error(),
            "{path} {body}: {}",
            resp.status()
        );
        let text = resp.text().await.expect("text");
        assert!(text.contains(want), "{path} {body}: {text}");
    }
    sb.stop().await;
}

#[tokio::test]
async fn placed_activities_on_both_ends_of_a_filter_are_exported() {
    let sb = start("none").await;
    let t = sb.token().await;
    let lead = place_new(&sb, json!({"email": "active@example.com"})).await;
    let mut guids = Vec::new();
    for (ty, date) in [
        (1, "2030-02-01T00:00:00Z"),
        (2, "2030-02-01T00:30:00Z"),
        (1, "2030-02-01T01:00:00Z"),
        (2, "2030-02-01T01:00:01Z"),
        (10, "2030-02-01T00:10:00Z"),
    ] {
        let resp = sb
            .http
            .post(sb.url("/_sandbox/activities"))
            .json(&json!({"leadId": lead, "activityTypeId": ty, "activityDate": date}))
            .send()
            .await
            .expect("place");
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.expect("json");
        guids.push(v["marketoGUID"].as_str().expect("guid").to_owned());
    }
    let rows = export(
        &sb,
        "activities",
        &t,
        &json!({"fields": ["marketoGUID", "leadId", "activityDate", "activityTypeId"],
                "filter": {"createdAt": range("2030-02-01T00:00:00Z", "2030-02-01T01:00:00Z"), "activityTypeIds": [1, 2]}}),
    )
    .await;
    assert_eq!(
        rows[1..],
        [
            format!("{},{lead},2030-02-01T00:00:00Z,1", guids[0]),
            format!("{},{lead},2030-02-01T00:30:00Z,2", guids[1]),
            format!("{},{lead},2030-02-01T01:00:00Z,1", guids[2]),
        ],
        "both ends inclusive, the later one and the other type left out"
    );
    // A bad range is still refused as Marketo does.
    let v = sb
        .post_json(
            "/bulk/v1/activities/export/create.json",
            &t,
            &json!({"filter": {"createdAt": range("2030-02-01T01:00:00Z", "2030-02-01T00:00:00Z")}}),
        )
        .await;
    assert_eq!(code(&v), "1003", "{v}");
    sb.stop().await;
}
