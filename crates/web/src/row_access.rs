//! Who may read the rows of staged datasets and return receipts. Rows may hold personal data
//! (a PROD export is leads with their emails), so an environment says who sees them
//! (`rows_visible_to`); everyone else sees counts, columns and why rows were rejected, never a
//! row. Every read of staged rows by the web server goes through here.

use drover_engine::ops::Actor;
use drover_spec::environment::{Environment, Role};
use drover_store::{DatasetPreview, DatasetRow, Store};

use crate::WebState;

/// Why `actor` may not see the rows of `env`'s datasets, if they may not.
pub(crate) fn rows_hidden(actor: &Actor, env: &Environment) -> Option<String> {
    if actor.sees_rows(env) {
        return None;
    }
    let who = match env.rows_visible_to {
        Role::Viewer => "everyone",
        Role::Operator => "operators and admins",
        Role::Admin => "admins",
    };
    Some(format!(
        "Rows of {} datasets are visible to {who} (they may hold personal data); you see counts, columns and rejection reasons.",
        env.name.to_uppercase()
    ))
}

/// The connections that read `env`'s staged tables (none: not from this process).
fn staging(state: &WebState) -> Option<&drover_store::StagingPools> {
    state.staging()
}

/// What reading rows gave.
pub(crate) enum Rows {
    Shown(DatasetPreview),
    /// The sentence saying why they are not shown.
    Hidden(String),
    /// Previews are not available from this process.
    Unavailable,
}

/// The first `limit` rows of `d` (with `only_problems`, a receipt's rejected and warned rows)
/// for `actor`, or why they are not shown.
pub(crate) async fn rows(
    state: &WebState,
    actor: &Actor,
    env: &Environment,
    d: &DatasetRow,
    only_problems: bool,
    limit: i64,
) -> Result<Rows, drover_store::StoreError> {
    if let Some(why) = rows_hidden(actor, env) {
        return Ok(Rows::Hidden(why));
    }
    match staging(state) {
        Some(pool) => Ok(Rows::Shown(
            Store::preview_dataset(pool, d, only_problems, limit).await?,
        )),
        None => Ok(Rows::Unavailable),
    }
}

/// The connections that may read `env`'s staged rows for `actor`, or why they may not: the
/// gate for pages that read rows themselves (a receipt's pages and its CSV).
pub(crate) fn rows_pool(
    state: &WebState,
    actor: &Actor,
    env: &Environment,
) -> Result<RowsPool, drover_store::StoreError> {
    if let Some(why) = rows_hidden(actor, env) {
        return Ok(RowsPool::Hidden(why));
    }
    match staging(state) {
        Some(pools) => Ok(RowsPool::Open(pools.pool(&env.name)?)),
        None => Ok(RowsPool::Unavailable),
    }
}

/// The connections that read counts of `env`'s staged rows (no row's values), which anyone
/// may see; none when rows are not readable from this process.
pub(crate) fn counts_pool(
    state: &WebState,
    env: &Environment,
) -> Result<Option<sqlx::PgPool>, drover_store::StoreError> {
    staging(state).map(|p| p.pool(&env.name)).transpose()
}

/// What [`rows_pool`] gave.
pub(crate) enum RowsPool {
    Open(sqlx::PgPool),
    /// The sentence saying why rows are not shown.
    Hidden(String),
    /// Rows are not readable from this process.
    Unavailable,
}

/// A receipt's rejected rows by reason, most frequent first (at most 20 reasons): what anyone
/// may see of a receipt. Empty for a dataset that is not a receipt.
pub(crate) async fn rejection_reasons(
    state: &WebState,
    env: &Environment,
    d: &DatasetRow,
) -> Result<Vec<(String, i64)>, drover_store::StoreError> {
    let has = |name: &str| d.columns.0.iter().any(|c| c.name == name);
    let Some(pools) = staging(state) else {
        return Ok(Vec::new());
    };
    if d.kind != "receipt" || d.dropped_at.is_some() || !has("status") || !has("reason") {
        return Ok(Vec::new());
    }
    // The relation is Drover's own name for the receipt, quoted; nothing else is spliced.
    let reasons: Vec<(Option<String>, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select reason, count(*) from {} where status = 'rejected' group by reason order by 2 desc, 1 limit 20",
        d.relation()
    )))
    .fetch_all(&pools.pool(&env.name)?)
    .await
    .map_err(drover_store::StoreError::from)?;
    Ok(reasons
        .into_iter()
        .map(|(r, n)| (r.unwrap_or_else(|| "no reason given".to_owned()), n))
        .collect())
}

/// "3 rows rejected: 2 × 1004 Lead not found; 1 × 1003 Invalid email".
pub(crate) fn describe_reasons(reasons: &[(String, i64)]) -> String {
    let total: i64 = reasons.iter().map(|(_, n)| n).sum();
    let each: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} × {r}")).collect();
    format!(
        "{total} row{} rejected: {}",
        if total == 1 { "" } else { "s" },
        each.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str, rows_visible_to: Role) -> Environment {
        let mut e: Environment = serde_json::from_value(serde_json::json!({
            "name": name, "order": 1,
            "map": {"kind": "marketo", "base_url": "http://127.0.0.1:1",
                    "client_id": {"env": "X"}, "client_secret": {"env": "Y"}}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        e.rows_visible_to = rows_visible_to;
        e
    }

    #[test]
    fn rows_show_to_the_environment_role_named_and_above() {
        let prod = env("prod", Role::Operator);
        let dev = env("dev", Role::Viewer);
        let viewer = Actor::with_role("vera", Role::Viewer);
        let operator = Actor::with_role("otto", Role::Operator);
        let mut olga = Actor::with_role("olga", Role::Operator);
        olga.environment_roles.insert("prod".into(), Role::Viewer);
        assert_eq!(
            rows_hidden(&viewer, &prod).as_deref(),
            Some(
                "Rows of PROD datasets are visible to operators and admins (they may hold personal data); you see counts, columns and rejection reasons."
            )
        );
        assert!(rows_hidden(&olga, &prod).is_some(), "a viewer in prod");
        assert!(rows_hidden(&operator, &prod).is_none());
        assert!(rows_hidden(&viewer, &dev).is_none());
        assert!(rows_hidden(&operator, &env("prod", Role::Admin)).is_some());
        assert_eq!(
            describe_reasons(&[("1004 Lead not found".into(), 2), ("1003 Bad".into(), 1)]),
            "3 rows rejected: 2 × 1004 Lead not found; 1 × 1003 Bad"
        );
    }
}
