//! Throughput at benchmark scale (1M leads). Ignored by default; run with
//! `cargo test -p drover-mapsim --release --test throughput -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use drover_mapsim::Limits;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark-sized; run explicitly in release"]
async fn million_leads_export_and_import() {
    let t0 = Instant::now();
    let sb = common::start_with("none", Limits::off(), 1_000_000).await;
    println!("start: {:?}", t0.elapsed());
    let t = sb.token().await;
    let end = chrono::Utc::now() + chrono::Duration::days(1);
    let t1 = Instant::now();
    let mut rows = 0u64;
    let mut bytes = 0u64;
    let mut ids = Vec::new();
    for w in 0..14 {
        let e = end - chrono::Duration::days(31 * w);
        let s = e - chrono::Duration::days(31);
        let body = json!({"fields": ["id", "email", "country", "leadScore", "updatedAt"],
            "filter": {"updatedAt": {"startAt": s.format("%Y-%m-%dT%H:%M:%SZ").to_string(), "endAt": e.format("%Y-%m-%dT%H:%M:%SZ").to_string()}}});
        let v = sb
            .post_json("/bulk/v1/leads/export/create.json", &t, &body)
            .await;
        let id = v["result"][0]["exportId"].as_str().expect("id").to_owned();
        sb.post_json(
            &format!("/bulk/v1/leads/export/{id}/enqueue.json"),
            &t,
            &json!({}),
        )
        .await;
        ids.push(id);
        if ids.len() < 2 && w < 13 {
            continue;
        }
        for id in std::mem::take(&mut ids) {
            let done = sb.wait_export("leads", &id, &t).await;
            rows += done["result"][0]["numberOfRecords"].as_u64().expect("n");
            let file = sb
                .http
                .get(sb.url(&format!("/bulk/v1/leads/export/{id}/file.json")))
                .bearer_auth(&t)
                .send()
                .await
                .expect("file")
                .bytes()
                .await
                .expect("bytes");
            bytes += file.len() as u64;
        }
    }
    let secs = t1.elapsed().as_secs_f64();
    println!(
        "export: {rows} rows, {bytes} bytes in {secs:.2}s = {:.0} rows/s",
        rows as f64 / secs
    );
    assert!(rows >= 990_000, "{rows}");

    let t2 = Instant::now();
    let mut batches = Vec::new();
    let mut id = 1u32;
    while id <= 1_000_000 {
        let mut csv = String::from("id,leadScore\n");
        while id <= 1_000_000 && csv.len() < 9_000_000 {
            csv.push_str(&format!("{id},{}\n", id % 100));
            id += 1;
        }
        let v = sb.import_csv(&t, &csv, "id").await;
        batches.push(v["result"][0]["batchId"].as_u64().expect("batch"));
    }
    let mut imported = 0;
    for b in batches {
        imported += sb.wait_import(b, &t).await["result"][0]["numOfLeadsProcessed"]
            .as_u64()
            .expect("n");
    }
    let stats = sb.admin("/_sandbox/stats").await;
    println!(
        "stats: writes={} leadsWritten={}",
        stats["writes"], stats["leadsWritten"]
    );
    let secs = t2.elapsed().as_secs_f64();
    println!(
        "import: {imported} rows in {secs:.2}s = {:.0} rows/s",
        imported as f64 / secs
    );
    assert_eq!(imported, 1_000_000);
    sb.stop().await;
}
