//! The values before the write: every record a return is about to write, read from the MAP
//! before its first write, so the receipt and `revert` hold what the records were before
//! this return and never what it wrote.
//!
//! Retry-safe: keys recorded by an earlier try (found or not) are not read again.

use std::sync::Arc;

use drover_map::{LeadQuery, MapConnector};
use drover_spec::dag::map_kinds::ReturnSpec;
use futures_util::StreamExt;
use sqlx::AssertSqlSafe;

use super::super::maps::map_error;
use super::super::{DataPlane, TaskError};
use super::side::SideTables;
use super::{normalize_key, value_text};

/// Reads of the values before the write in flight at once.
const READS_AT_ONCE: usize = 4;
/// Keys taken from the rows table at a time.
const KEYS_PER_PAGE: i64 = 3_000;

/// What a snapshot read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Keys read from the MAP by this try.
    pub(crate) read: u64,
    /// Of those, keys the MAP has a record for.
    pub(crate) found: u64,
}

/// Fill `side.before` with the current values (`id`, the lookup field and `spec.fields`) of
/// the record of every non-blank key of `side.rows` not yet there; a key the MAP has no
/// record for is recorded with a null `previous` (a record this return creates).
pub(crate) async fn fill(
    plane: &DataPlane,
    client: &Arc<dyn MapConnector>,
    spec: &ReturnSpec,
    side: &SideTables,
) -> Result<Snapshot, TaskError> {
    let mut fields = vec!["id".to_owned()];
    for f in std::iter::once(&spec.lookup).chain(&spec.fields) {
        if !fields.contains(f) {
            fields.push(f.clone());
        }
    }
    let mut out = Snapshot::default();
    let mut after = String::new();
    loop {
        let keys: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "select r.key from {rows} r
             where r.key > $1 and not exists (select 1 from {before} b where b.key = r.key)
             order by r.key limit {KEYS_PER_PAGE}",
            rows = side.rows,
            before = side.before,
        )))
        .bind(&after)
        .fetch_all(plane.store.pool())
        .await?;
        let Some(last) = keys.last() else {
            return Ok(out);
        };
        after = last.clone();
        // Several reads at once: the client's own limiter keeps them within the MAP's limits.
        let reads: Vec<_> = keys
            .chunks(drover_map::MAX_BATCH)
            .map(|values| {
                client.fetch_leads(LeadQuery {
                    filter_type: spec.lookup.clone(),
                    values: values.to_vec(),
                    fields: fields.clone(),
                })
            })
            .collect();
        let found: Vec<drover_map::Record> = futures_util::stream::iter(reads)
            .buffer_unordered(READS_AT_ONCE)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_error)?
            .into_iter()
            .flatten()
            .collect();
        let mut found_keys = Vec::with_capacity(keys.len());
        let mut previous = Vec::with_capacity(keys.len());
        for mut record in found {
            let Some(k) = record.get(&spec.lookup).and_then(value_text) else {
                continue;
            };
            // A field the MAP leaves out of a record is null: say so, so revert clears it.
            for f in &fields {
                record.entry(f.clone()).or_insert(serde_json::Value::Null);
            }
            found_keys.push(normalize_key(&spec.lookup, &k));
            previous.push(Some(serde_json::Value::Object(record)));
        }
        out.read += keys.len() as u64;
        out.found += found_keys.len() as u64;
        // Keys the MAP had no record for: the return creates them.
        let seen: std::collections::HashSet<String> = found_keys.iter().cloned().collect();
        for k in &keys {
            if !seen.contains(k) {
                found_keys.push(k.clone());
                previous.push(None);
            }
        }
        // Several records per key (duplicates already in the MAP): the first (lowest id) is kept.
        sqlx::query(AssertSqlSafe(format!(
            "insert into {} (key, previous) select * from unnest($1::text[], $2::jsonb[]) on conflict (key) do nothing",
            side.before
        )))
        .bind(&found_keys)
        .bind(&previous)
        .execute(plane.store.pool())
        .await?;
    }
}
