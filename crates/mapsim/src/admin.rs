//! Sandbox-only endpoints under `/_sandbox/` (no auth): faults, leads, stats, clock, reset, and
//! placing leads and activities at exact instants (for tests of interval boundaries).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, json};

use crate::data::{self, FIELDS, Value};
use crate::faults::FaultProfile;
use crate::state::AppState;
use crate::store::WriteVia;

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_sandbox/faults", get(get_faults).put(put_faults))
        .route("/_sandbox/leads", post(place_new_lead))
        .route("/_sandbox/leads/{id}", get(get_lead).put(place_lead))
        .route("/_sandbox/activities", post(place_activity))
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/writes", get(writes))
        .route("/_sandbox/calls", get(calls))
        .route("/_sandbox/clock/advance", post(advance_clock))
        .route("/_sandbox/tokens/expire", post(expire_tokens))
        .route("/_sandbox/reset", post(reset))
}

async fn get_faults(State(state): State<Arc<AppState>>) -> Json<FaultProfile> {
    Json(state.faults())
}

/// Accepts a JSON [`FaultProfile`] or a JSON string with a comma list (`"rate-limit,quota"`).
async fn put_faults(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let parsed = serde_json::from_slice::<FaultProfile>(&body)
        .map_err(|e| e.to_string())
        .or_else(|e| {
            serde_json::from_slice::<String>(&body)
                .map_err(|_| e)
                .and_then(|s| s.parse::<FaultProfile>().map_err(|e| e.to_string()))
        });
    match parsed {
        Ok(p) => {
            tracing::info!(faults = %p, "fault profile switched");
            state.set_faults(p.clone());
            Json(p).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    }
}

async fn get_lead(State(state): State<Arc<AppState>>, Path(id): Path<u32>) -> Response {
    let store = state.read_store();
    let Some(lead) = store.get(id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("lead {id} not found")})),
        )
            .into_response();
    };
    let mut m = Map::new();
    for (f, v) in FIELDS.iter().zip(lead.iter()) {
        m.insert(f.rest.to_owned(), v.to_json());
    }
    m.insert("_writeCount".to_owned(), json!(store.write_count(id)));
    Json(m).into_response()
}

fn bad_request(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": e.to_string()})),
    )
        .into_response()
}

/// The fields of a placement body (`{"updatedAt": "…", "country": "Narnia", …}`), typed as the
/// schema says; `id` cannot be set.
fn placed_fields(body: &Map<String, serde_json::Value>) -> Result<Vec<(usize, Value)>, String> {
    body.iter()
        .map(|(name, v)| {
            let idx = data::field_index(name).ok_or_else(|| format!("no lead field `{name}`"))?;
            if idx == data::ID {
                return Err("`id` is given by the sandbox".to_owned());
            }
            data::parse_json(idx, v)
                .map(|v| (idx, v))
                .map_err(|e| format!("{name}: {e}"))
        })
        .collect()
}

/// `POST /_sandbox/leads`: a new lead holding exactly the given fields (`createdAt` and
/// `updatedAt` default to the sandbox's now); answers `{"id": …}`.
async fn place_new_lead(
    State(state): State<Arc<AppState>>,
    Json(body): Json<Map<String, serde_json::Value>>,
) -> Response {
    let values = match placed_fields(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let now = state.clock.now().timestamp();
    let id = state.write_store().create_placed(values, now);
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

/// `PUT /_sandbox/leads/{id}`: sets exactly the given fields, timestamps included; `updatedAt`
/// moves only when given, and no write is logged (unlike Sync Leads).
async fn place_lead(
    State(state): State<Arc<AppState>>,
    Path(id): Path<u32>,
    Json(body): Json<Map<String, serde_json::Value>>,
) -> Response {
    let values = match placed_fields(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let placed = {
        let mut store = state.write_store();
        let found = store.exists(id);
        if found {
            store.place(id, values);
        }
        found
    };
    if !placed {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("lead {id} not found")})),
        )
            .into_response();
    }
    get_lead(State(state), Path(id)).await
}

/// Body of `POST /_sandbox/activities`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PlacedActivity {
    lead_id: u32,
    activity_type_id: u32,
    activity_date: String,
}

/// Activity types the sandbox can write rows for.
const PLACEABLE_TYPES: &[u32] = &[1, 2, 10, 11, 12];

/// `POST /_sandbox/activities`: an activity of an existing lead at an exact instant; answers
/// `{"marketoGUID": "…"}`.
async fn place_activity(
    State(state): State<Arc<AppState>>,
    Json(a): Json<PlacedActivity>,
) -> Response {
    if !PLACEABLE_TYPES.contains(&a.activity_type_id) {
        return bad_request(format!(
            "activityTypeId {} cannot be placed; use one of {PLACEABLE_TYPES:?}",
            a.activity_type_id
        ));
    }
    let Some(date) = crate::clock::parse_iso(&a.activity_date) else {
        return bad_request(format!(
            "activityDate `{}` is not a timestamp like 2026-01-01T00:00:00Z",
            a.activity_date
        ));
    };
    let guid = {
        let mut store = state.write_store();
        store
            .exists(a.lead_id)
            .then(|| store.place_activity(a.lead_id, a.activity_type_id, date.timestamp()))
    };
    let Some(guid) = guid else {
        return bad_request(format!("lead {} not found", a.lead_id));
    };
    (
        StatusCode::CREATED,
        Json(json!({"marketoGUID": guid.to_string()})),
    )
        .into_response()
}

async fn stats(State(state): State<Arc<AppState>>) -> Response {
    let counts = state.stats.snapshot();
    let today = state.clock.quota_day();
    let store = state.read_store();
    let mut per_source: HashMap<(u32, WriteVia, u64), u32> = HashMap::new();
    let mut per_lead: HashMap<u32, u32> = HashMap::new();
    let mut by_via: HashMap<WriteVia, u64> = HashMap::new();
    for w in &store.writes {
        *per_source.entry((w.lead_id, w.via, w.source)).or_default() += 1;
        *per_lead.entry(w.lead_id).or_default() += 1;
        *by_via.entry(w.via).or_default() += 1;
    }
    let mut dups: Vec<_> = per_source
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|((lead, via, source), n)| json!({"leadId": lead, "via": via, "source": source, "count": n}))
        .collect();
    dups.sort_by_key(|v| v["leadId"].as_u64());
    dups.truncate(1000);
    let body = json!({
        "calls": counts.calls,
        "callsByEndpoint": counts.calls_by_endpoint,
        "callsByUser": counts.calls_by_user,
        "errorsByCode": counts.errors_by_code,
        "httpStatus": counts.http_status,
        "gzipResponses": counts.gzip_responses,
        "dailyCalls": state.limiter.calls_today(today),
        "exportBytesToday": state.limiter.export_bytes_today(today),
        "leadsWritten": per_lead.len(),
        "writes": store.writes.len(),
        "writesByVia": {
            "sync": by_via.get(&WriteVia::Sync).copied().unwrap_or(0),
            "import": by_via.get(&WriteVia::Import).copied().unwrap_or(0),
            "form": by_via.get(&WriteVia::Form).copied().unwrap_or(0),
        },
        "maxWritesPerLead": per_lead.values().max().copied().unwrap_or(0),
        "duplicateWrites": dups,
        "leads": store.id_end().saturating_sub(1),
        "exports": state.exports.summary(),
        "imports": state.imports.summary(),
        "faults": state.faults().names(),
    });
    Json(body).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WritesQuery {
    lead_id: Option<u32>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// The write log, optionally for one lead: `[{leadId, via, source}]`.
async fn writes(State(state): State<Arc<AppState>>, Query(q): Query<WritesQuery>) -> Response {
    let store = state.read_store();
    let list: Vec<_> = store
        .writes
        .iter()
        .filter(|w| q.lead_id.is_none_or(|id| w.lead_id == id))
        .skip(q.offset.unwrap_or(0))
        .take(q.limit.unwrap_or(10_000))
        .copied()
        .collect();
    Json(json!({"writes": list})).into_response()
}

/// The Marketo (non-identity) endpoints called since the last reset, in order, a read sent as
/// a POST marked `?_method=GET`: `{"calls": ["GET /rest/v1/leads.json", …]}`.
async fn calls(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({"calls": state.stats.calls_in_order()})).into_response()
}

#[derive(Debug, Deserialize)]
struct Advance {
    seconds: i64,
}

/// Moves the sandbox clock forward (token expiry, quota day).
async fn advance_clock(State(state): State<Arc<AppState>>, Json(a): Json<Advance>) -> Response {
    state.clock.advance(a.seconds);
    Json(json!({"now": crate::clock::iso(state.clock.now())})).into_response()
}

/// Expires every issued token (the "revoke" switch).
async fn expire_tokens(State(state): State<Arc<AppState>>) -> StatusCode {
    state.tokens.kill_all();
    StatusCode::NO_CONTENT
}

/// Clears call statistics, rate windows and daily quotas (data and jobs stay).
async fn reset(State(state): State<Arc<AppState>>) -> StatusCode {
    state.stats.reset();
    state.limiter.reset();
    StatusCode::NO_CONTENT
}
