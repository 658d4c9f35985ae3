//! Record history for the page and the API: the search read, the environment's
//! `rows_visible_to` applied (a record's values, and even whether it was touched, are lead
//! data).

use drover_engine::ops::Actor;
use drover_spec::environment::Environment;
use drover_store::{RecordQuery, RecordTouch};

use crate::WebState;
use crate::error::Failure;

/// Touches shown at most.
pub(crate) const MAX_LIMIT: i64 = 1_000;

/// What a search found.
pub(crate) struct Found {
    pub(crate) query: RecordQuery,
    /// `None` when the actor may not see this environment's rows.
    pub(crate) touches: Option<Vec<RecordTouch>>,
    /// Why the touches are not shown.
    pub(crate) hidden: Option<String>,
    /// More touches than `limit`.
    pub(crate) more: bool,
}

/// The history of the record `text` names in `env` (as `email=…`, `id=…`, `field=value` or a
/// bare email), at most `limit` touches, for `actor`.
pub(crate) async fn search(
    state: &WebState,
    actor: &Actor,
    env: &Environment,
    text: &str,
    limit: i64,
) -> Result<Found, Failure> {
    let query = RecordQuery::parse(text).map_err(Failure::bad_request)?;
    if let Some(why) = crate::row_access::rows_hidden(actor, env) {
        return Ok(Found {
            query,
            touches: None,
            hidden: Some(why),
            more: false,
        });
    }
    let limit = limit.clamp(1, MAX_LIMIT);
    let mut touches = state
        .store()
        .record_history(&env.name, &query, limit + 1)
        .await?;
    let more = touches.len() as i64 > limit;
    touches.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(Found {
        query,
        touches: Some(touches),
        hidden: None,
        more,
    })
}
