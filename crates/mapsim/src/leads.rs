//! Lead database endpoints: describe, activity types, get leads, sync leads, usage stats.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::auth::Caller;
use crate::data::{self, FIELDS, Lead};
use crate::envelope::{self, ApiError, ApiResult};
use crate::rules;
use crate::state::AppState;
use crate::store::{LeadStore, WriteVia};

/// Body limit of REST calls (Marketo: 1 MB).
pub(crate) const MAX_BODY: usize = 1024 * 1024;
/// Most values/records per call.
const MAX_BATCH: usize = 300;
const DEFAULT_FIELDS: &[&str] = &[
    "id",
    "email",
    "updatedAt",
    "createdAt",
    "firstName",
    "lastName",
];

/// `GET /rest/v1/leads/describe.json`.
pub(crate) async fn describe() -> Response {
    let result = FIELDS
        .iter()
        .map(|f| {
            let mut o = json!({
                "id": f.id,
                "displayName": f.display,
                "dataType": f.data_type.name(),
                "rest": {"name": f.rest, "readOnly": f.read_only},
                "soap": {"name": f.soap, "readOnly": f.read_only},
            });
            if let (Some(len), Some(map)) = (f.length, o.as_object_mut()) {
                map.insert("length".to_owned(), json!(len));
            }
            o
        })
        .collect();
    envelope::ok(result)
}

/// `GET /rest/v1/leads/describe2.json`: one `API Lead` entry with `searchableFields` (each a
/// list, compound keys having several names) and the description of every field.
pub(crate) async fn describe2() -> Response {
    let searchable: Vec<Json> = data::SEARCHABLE
        .iter()
        .map(|i| json!([FIELDS[*i].rest]))
        .collect();
    let fields: Vec<Json> = FIELDS
        .iter()
        .map(|f| {
            let mut o = json!({
                "name": f.rest,
                "displayName": f.display,
                "dataType": f.data_type.name(),
                "updateable": !f.read_only,
                "crmManaged": false,
            });
            if let (Some(len), Some(map)) = (f.length, o.as_object_mut()) {
                map.insert("length".to_owned(), json!(len));
            }
            o
        })
        .collect();
    envelope::ok(vec![json!({
        "name": "API Lead",
        "searchableFields": searchable,
        "fields": fields,
    })])
}

/// `GET /rest/v1/activities/types.json`.
pub(crate) async fn activity_types() -> Response {
    let result = data::ACTIVITY_TYPES
        .iter()
        .map(|(id, name, desc, primary, attrs)| {
            let attributes: Vec<Json> = attrs
                .iter()
                .map(|(n, t)| json!({"name": n, "dataType": t}))
                .collect();
            let (pn, pt) = primary.unwrap_or(("Lead ID", "integer"));
            json!({
                "id": id,
                "name": name,
                "description": desc,
                "primaryAttribute": {"name": pn, "dataType": pt},
                "attributes": attributes,
            })
        })
        .collect();
    envelope::ok(result)
}

/// Query of Get Leads by Filter Type.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LeadsQuery {
    filter_type: Option<String>,
    filter_values: Option<String>,
    fields: Option<String>,
    batch_size: Option<String>,
    next_page_token: Option<String>,
}

/// Parses a `fields` list (default: Marketo's six).
fn field_list(fields: Option<&str>) -> Result<Vec<usize>, ApiError> {
    let names: Vec<&str> = match fields.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
        None => DEFAULT_FIELDS.to_vec(),
    };
    names
        .into_iter()
        .map(|n| {
            data::field_index(n)
                .ok_or_else(|| ApiError::new(1006, format!("Field '{n}' not found")))
        })
        .collect()
}

/// JSON of a lead with `fields` (always with `id`).
pub(crate) fn lead_json(lead: &Lead, fields: &[usize]) -> Json {
    let mut m = Map::new();
    m.insert("id".to_owned(), lead[data::ID].to_json());
    for &i in fields {
        if i != data::ID {
            m.insert(FIELDS[i].rest.to_owned(), lead[i].to_json());
        }
    }
    Json::Object(m)
}

/// `GET /rest/v1/leads.json`.
pub(crate) async fn get_leads(
    State(state): State<Arc<AppState>>,
    Query(q): Query<LeadsQuery>,
) -> ApiResult {
    query_leads(&state, q)
}

fn query_leads(state: &AppState, q: LeadsQuery) -> ApiResult {
    let filter_type = q
        .filter_type
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::blank("filterType"))?;
    let values_raw = q
        .filter_values
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::blank("filterValues"))?;
    let values: Vec<&str> = values_raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if values.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "Number of filterValues exceeds limit {MAX_BATCH}"
        )));
    }
    let fields = field_list(q.fields.as_deref())?;
    let batch = match q.batch_size.as_deref() {
        None | Some("") => MAX_BATCH,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|b| (1..=MAX_BATCH).contains(b))
            .ok_or_else(|| ApiError::invalid(format!("Invalid batchSize '{s}'")))?,
    };
    let offset = match q.next_page_token.as_deref() {
        None | Some("") => 0,
        Some(t) => envelope::page_offset(t)?,
    };
    let store = state.read_store();
    let filter_idx = data::searchable_index(&filter_type).ok_or_else(|| {
        ApiError::new(1011, format!("Lookup field '{filter_type}' not supported"))
    })?;
    let mut ids: Vec<u32> = Vec::new();
    for v in values {
        let found = match filter_idx {
            data::ID => v
                .parse::<u32>()
                .ok()
                .filter(|id| store.exists(*id))
                .into_iter()
                .collect(),
            data::EMAIL => store.find_by_email(v),
            idx => store.find_by_field(idx, v),
        };
        for id in found {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    let page: Vec<Json> = ids
        .iter()
        .skip(offset)
        .take(batch)
        .filter_map(|id| store.get(*id))
        .map(|l| lead_json(&l, &fields))
        .collect();
    let next = (offset + batch < ids.len()).then(|| envelope::page_token(offset + batch));
    Ok(envelope::ok_paged(page, next))
}

/// Query of Get Lead by Id.
#[derive(Debug, Deserialize, Default)]
pub(crate) struct FieldsQuery {
    fields: Option<String>,
}

/// `GET /rest/v1/lead/{id}.json`.
pub(crate) async fn get_lead(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<FieldsQuery>,
) -> ApiResult {
    let fields = field_list(q.fields.as_deref())?;
    let id: u32 = id
        .strip_suffix(".json")
        .unwrap_or(&id)
        .parse()
        .map_err(|_| ApiError::invalid("Invalid lead id"))?;
    let lead = state.read_store().get(id);
    Ok(envelope::ok(
        lead.map(|l| lead_json(&l, &fields)).into_iter().collect(),
    ))
}

/// Body of Sync Leads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SyncRequest {
    action: Option<String>,
    lookup_field: Option<String>,
    #[allow(dead_code)]
    partition_name: Option<String>,
    #[allow(dead_code)]
    async_processing: Option<bool>,
    input: Option<Vec<Json>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    CreateOnly,
    UpdateOnly,
    CreateOrUpdate,
    CreateDuplicate,
}

/// True if the request declares a JSON body.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
}

/// `POST /rest/v1/leads.json`: Sync Leads, or Get Leads when `_method=GET` (long URIs).
pub(crate) async fn sync_leads(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if body.len() > MAX_BODY {
        return Ok((StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large").into_response());
    }
    let method_get = raw
        .as_deref()
        .is_some_and(|q| q.split('&').any(|kv| kv == "_method=GET"));
    if method_get {
        let mut text = String::from_utf8_lossy(&body).into_owned();
        if let Some(q) = raw.as_deref() {
            text = format!("{q}&{text}");
        }
        let uri: axum::http::Uri = format!("/?{text}")
            .parse()
            .map_err(|_| ApiError::invalid("Invalid form body"))?;
        let Query(q) = Query::<LeadsQuery>::try_from_uri(&uri)
            .map_err(|_| ApiError::invalid("Invalid form body"))?;
        return query_leads(&state, q);
    }
    if !is_json(&headers) {
        return Err(ApiError::invalid_content_type());
    }
    let req: SyncRequest = serde_json::from_slice(&body).map_err(|_| ApiError::invalid_json())?;
    let action = match req.action.as_deref().unwrap_or("createOrUpdate") {
        "createOnly" => Action::CreateOnly,
        "updateOnly" => Action::UpdateOnly,
        "createOrUpdate" => Action::CreateOrUpdate,
        "createDuplicate" => Action::CreateDuplicate,
        other => return Err(ApiError::invalid(format!("Invalid action '{other}'"))),
    };
    let lookup = req.lookup_field.unwrap_or_else(|| "email".to_owned());
    let lookup_idx = data::searchable_index(&lookup)
        .ok_or_else(|| ApiError::new(1011, format!("Lookup field '{lookup}' not supported")))?;
    if lookup_idx == data::ID && action != Action::UpdateOnly {
        return Err(ApiError::invalid(
            "Lookup field 'id' is only allowed with action 'updateOnly'",
        ));
    }
    let input = req
        .input
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::blank("input"))?;
    if input.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "Input exceeds the limit of {MAX_BATCH} records"
        )));
    }
    let faults = state.faults();
    let partial = faults.partial_import;
    let source = state.next_seq();
    let clock = state.clock.now();
    let now = clock.timestamp();
    let race = faults.upsert_race.map(|r| Race {
        recent: &state.recent_creates,
        window_ms: r.window_ms,
        now_ms: clock.timestamp_millis(),
    });
    let mut store = state.write_store();
    let results = input
        .iter()
        .map(|rec| {
            sync_one(&mut store, rec, action, lookup_idx, partial.as_ref(), race.as_ref(), state.seed, now, source)
                .unwrap_or_else(|(code, message)| {
                    json!({"status": "skipped", "reasons": [{"code": code.to_string(), "message": message}]})
                })
        })
        .collect();
    drop(store);
    tracing::debug!(client = %caller.client_id, source, "sync leads");
    Ok(envelope::ok(results))
}

type Skip = (u16, String);

/// The `upsert-race` fault in force for one call.
struct Race<'a> {
    recent: &'a crate::faults::RecentCreates,
    window_ms: u64,
    now_ms: i64,
}

#[allow(clippy::too_many_arguments)]
fn sync_one(
    store: &mut LeadStore,
    rec: &Json,
    action: Action,
    lookup_idx: usize,
    partial: Option<&crate::faults::PartialImportFault>,
    race: Option<&Race<'_>>,
    seed: u64,
    now: i64,
    source: u64,
) -> Result<Json, Skip> {
    let obj = rec.as_object().ok_or((1003, "Invalid record".to_owned()))?;
    let lookup_name = FIELDS[lookup_idx].rest;
    let mut values = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        let idx = data::field_index(k).ok_or_else(|| (1006, format!("Field '{k}' not found")))?;
        if FIELDS[idx].read_only {
            continue;
        }
        let value = data::parse_json(idx, v)
            .map_err(|_| (1003, format!("Invalid value for field '{k}'")))?;
        values.push((idx, value));
    }
    let key = match obj.get(lookup_name) {
        Some(Json::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Json::Number(n)) => n.to_string(),
        _ => {
            return Err((
                1002,
                format!("Value for lookup field '{lookup_name}' not specified"),
            ));
        }
    };
    let email = obj.get("email").and_then(Json::as_str);
    let verdict = rules::check(partial, seed, email, &key);
    if let Some(msg) = verdict.fail {
        return Err((1003, msg));
    }
    if partial.is_some()
        && let Some(msg) = verdict.warn
    {
        return Err((1003, msg));
    }
    let matches: Vec<u32> = match lookup_idx {
        data::ID => key
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|id| store.exists(*id))
            .into_iter()
            .collect(),
        data::EMAIL => store.find_by_email(&key),
        idx => store.find_by_field(idx, &key),
    };
    let write = (WriteVia::Sync, source);
    let created = |store: &mut LeadStore, values| json!({"id": store.create(values, now, write), "status": "created"});
    if let (Some(race), Action::CreateOrUpdate) = (race, action) {
        // A new key, or one created so lately that this upsert does not see that lead yet.
        let matched = if lookup_idx == data::EMAIL {
            data::normalize_email(&key)
        } else {
            key.trim().to_lowercase()
        };
        if matches.is_empty()
            || race
                .recent
                .racing(lookup_idx, &matched, race.now_ms, race.window_ms)
        {
            race.recent
                .created(lookup_idx, &matched, race.now_ms, race.window_ms);
            return Ok(created(store, values));
        }
    }
    match (action, matches.as_slice()) {
        (Action::CreateDuplicate, _) | (Action::CreateOnly | Action::CreateOrUpdate, []) => {
            Ok(created(store, values))
        }
        (Action::CreateOnly, _) => Err((1005, "Lead already exists".to_owned())),
        (Action::UpdateOnly, []) => Err((1004, "Lead not found".to_owned())),
        (_, [id]) => {
            store.update(*id, values, now, write);
            Ok(json!({"id": id, "status": "updated"}))
        }
        (_, _) => Err((1007, "Multiple lead match lookup criteria".to_owned())),
    }
}

/// `GET /rest/v1/stats/usage.json`: today's calls by API user.
pub(crate) async fn usage(State(state): State<Arc<AppState>>) -> Response {
    let counts = state.stats.snapshot();
    let users: Vec<Json> = counts
        .calls_by_user
        .iter()
        .map(|(u, c)| json!({"userId": u, "count": c}))
        .collect();
    let total: u64 = counts.calls_by_user.values().sum();
    envelope::ok(vec![
        json!({"date": state.clock.quota_day().to_string(), "total": total, "users": users}),
    ])
}

/// `GET /rest/v1/stats/errors.json`: today's errors by code.
pub(crate) async fn errors(State(state): State<Arc<AppState>>) -> Response {
    let counts = state.stats.snapshot();
    let errors: Vec<Json> = counts
        .errors_by_code
        .iter()
        .map(|(c, n)| json!({"errorCode": c, "count": n}))
        .collect();
    let total: u64 = counts.errors_by_code.values().sum();
    envelope::ok(vec![
        json!({"date": state.clock.quota_day().to_string(), "total": total, "errors": errors}),
    ])
}
