//! One staging schema and one SQL role per environment. Environment `E` gets the schema
//! `staging_E` (its staged datasets), the schema `receipts_E` (return receipts and the values
//! before a write, written only by Drover's own login and readable by `E`'s role), and the
//! role `drover_sql_E` its user SQL runs as: it can use and create in `staging_E`, read
//! `receipts_E` and call the `drover_lib` helpers, and nothing else — no Drover table, no other
//! environment's schema. Drover's login is made a member of the role so it can cancel and end
//! that role's queries.
//!
//! Provisioning is idempotent and safe to run from several processes at once: roles are
//! cluster-wide (other databases of the cluster may create the same role at the same moment),
//! so a role that appears meanwhile is accepted, and a concurrent catalog update is retried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_spec::dataset::{
    OLD_STAGING_SCHEMA, quote_ident, quoted_relation, receipts_schema, sql_role, staging_schema,
    table_name,
};
use drover_spec::environment::valid_environment_name;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool, Row};

use crate::{Result, Store, StoreError};

/// The variable holding the password of every `drover_sql_<env>` role, where the server asks
/// for one; `DROVER_SQL_PASSWORD_<ENV>` (the environment's name upper-cased) takes precedence.
pub const STAGING_PASSWORD_VAR: &str = "DROVER_SQL_PASSWORD";

/// The most temporary file space one session of user SQL may use (`temp_file_limit`, set on
/// the role where Drover's login may).
pub const TEMP_FILE_LIMIT: &str = "4GB";

/// The variable that holds `environment`'s SQL role password (checked first).
pub fn staging_password_var(environment: &str) -> String {
    format!(
        "{STAGING_PASSWORD_VAR}_{}",
        environment.to_ascii_uppercase()
    )
}

/// The server-side limits of one session of user SQL.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// `statement_timeout`.
    pub statement: Duration,
    /// `lock_timeout`.
    pub lock: Duration,
    /// `idle_in_transaction_session_timeout`.
    pub idle_in_transaction: Duration,
}

impl SessionLimits {
    /// Limits for a try with `remaining` time: no statement, lock wait or idle transaction
    /// outlasts it.
    pub fn within(remaining: Duration) -> Self {
        let remaining = remaining.max(Duration::from_millis(1));
        Self {
            statement: remaining,
            lock: remaining.min(Duration::from_secs(60)),
            idle_in_transaction: remaining,
        }
    }
}

/// What provisioning did that an operator should know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provisioned {
    /// Tables of the old shared `staging` schema moved into this environment's schemas.
    pub moved: u64,
    /// Receipt tables of the old shared schema left where they are: something on them (a
    /// trigger, a policy, an expression index, a default, a type of user SQL's) would run
    /// user code as Drover's login once Drover owned them. Each is logged with its reason.
    pub refused: u64,
    /// `temp_file_limit` could not be set on the role (Drover's login is not allowed to):
    /// the reason.
    pub temp_file_limit_refused: Option<String>,
}

fn bad_name(environment: &str) -> StoreError {
    StoreError::Conflict(format!(
        "environment `{environment}` cannot have a SQL schema: its name must match ^[a-z][a-z0-9_]{{0,30}}$"
    ))
}

/// Whether `e` is a catalog update that raced another process's (worth one more go).
fn raced(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(sqlx::Error::Database(db))
        if matches!(db.code().as_deref(), Some("XX000" | "23505" | "40001" | "40P01" | "42710")))
}

impl Store {
    /// Create (or complete) environment `environment`'s schemas and role and move its tables
    /// of the old shared layout into them. Idempotent; safe to run concurrently.
    pub async fn provision_sql_environment(&self, environment: &str) -> Result<Provisioned> {
        if !valid_environment_name(environment) {
            return Err(bad_name(environment));
        }
        let mut attempt = 0;
        loop {
            match self.provision_once(environment).await {
                Err(e) if raced(&e) && attempt < 8 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn provision_once(&self, environment: &str) -> Result<Provisioned> {
        let role = sql_role(environment);
        let r = quote_ident(&role);
        let mut done = Provisioned::default();
        // The role (cluster-wide): created if missing, accepted if another process made it
        // meanwhile.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "do $$ begin
               create role {r} login nosuperuser nocreatedb nocreaterole noinherit noreplication nobypassrls;
             exception when duplicate_object or unique_violation then null;
             end $$"
        )))
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(
            "select rolsuper or rolcreaterole or rolcreatedb or rolbypassrls or rolreplication as mighty,
                    (select string_agg(quote_ident(g.rolname), ', ' order by g.rolname)
                     from pg_auth_members m join pg_roles g on g.oid = m.roleid
                     where m.member = r.oid) as memberships,
                    pg_has_role(current_user, oid, 'member') as member,
                    exists (select 1 from pg_db_role_setting s
                            where s.setrole = r.oid and s.setdatabase = 0
                              and format('temp_file_limit=%s', $2::text) = any(s.setconfig)) as limited
             from pg_roles r where rolname = $1",
        )
        .bind(&role)
        .bind(TEMP_FILE_LIMIT)
        .fetch_one(&self.pool)
        .await?;
        if row.try_get::<bool, _>("mighty")? {
            return Err(StoreError::Conflict(format!(
                "role `{role}` exists with powers user SQL must not have (superuser, createrole, createdb, bypassrls or replication): remove them (`alter role {role} nosuperuser nocreaterole nocreatedb nobypassrls noreplication`)"
            )));
        }
        if let Some(memberships) = row.try_get::<Option<String>, _>("memberships")? {
            return Err(StoreError::Conflict(format!(
                "role `{role}` is a member of {memberships}: user SQL must have no other role's rights; revoke them (`revoke {memberships} from {r}`)"
            )));
        }
        if !row.try_get::<bool, _>("member")? {
            // Drover's login joins the role, so it can cancel and end the role's queries.
            sqlx::raw_sql(AssertSqlSafe(format!(
                "do $$ begin
                   grant {r} to current_user;
                 exception when duplicate_object or unique_violation then null;
                 end $$"
            )))
            .execute(&self.pool)
            .await?;
        }
        if !row.try_get::<bool, _>("limited")? {
            let set = sqlx::query(AssertSqlSafe(format!(
                "alter role {r} set temp_file_limit = {}",
                drover_spec::dataset::quote_literal(TEMP_FILE_LIMIT)
            )))
            .execute(&self.pool)
            .await;
            match set {
                Ok(_) => {}
                Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42501") => {
                    done.temp_file_limit_refused = Some(db.message().to_owned());
                }
                Err(e) => return Err(e.into()),
            }
        }

        // The schemas and grants (per database), one process at a time.
        let staging = quote_ident(&staging_schema(environment));
        let receipts = quote_ident(&receipts_schema(environment));
        let mut tx = self.pool.begin().await?;
        sqlx::query("lock table sql_environment in share row exclusive mode")
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "create schema if not exists {staging};
             create schema if not exists {receipts};
             grant usage, create on schema {staging} to {r};
             grant usage on schema {receipts} to {r};
             grant usage on schema drover_lib to {r};
             grant select on drover_lib.country_alias to {r};
             grant execute on function drover_lib.iso_country(text), drover_lib.e164(text) to {r};"
        )))
        .execute(&mut *tx)
        .await?;
        (done.moved, done.refused) = move_old_layout(&mut tx, environment).await?;
        sqlx::query(
            "insert into sql_environment (name, provisioned_at) values ($1, now())
             on conflict (name) do update set provisioned_at = now()",
        )
        .bind(environment)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done)
    }

    /// How to connect as `environment`'s SQL role with `search_path` = its staging schema and
    /// `limits` (same server and database as the store).
    pub fn staging_options(
        &self,
        environment: &str,
        limits: SessionLimits,
    ) -> Result<PgConnectOptions> {
        if !valid_environment_name(environment) {
            return Err(bad_name(environment));
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).to_string();
        let mut options = (*self.pool.connect_options())
            .clone()
            .username(&sql_role(environment))
            .options([
                ("search_path", staging_schema(environment)),
                ("statement_timeout", ms(limits.statement)),
                ("lock_timeout", ms(limits.lock)),
                (
                    "idle_in_transaction_session_timeout",
                    ms(limits.idle_in_transaction),
                ),
            ]);
        let password = std::env::var(staging_password_var(environment))
            .or_else(|_| std::env::var(STAGING_PASSWORD_VAR));
        if let Ok(password) = password {
            options = options.password(&password);
        }
        Ok(options)
    }

    /// A lazily-connected pool as `environment`'s SQL role (for reading staged rows, e.g.
    /// previews; user SQL of a task runs on a connection of its own).
    pub fn staging_pool(&self, environment: &str, max_connections: u32) -> Result<PgPool> {
        let options =
            self.staging_options(environment, SessionLimits::within(Duration::from_secs(60)))?;
        // Lazy: a process starts even where the role cannot log in; reads then fail with the
        // server's reason.
        Ok(PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(options))
    }

    /// End the server process `pid`, a session of `environment`'s user SQL, and wait until it
    /// is gone (at most `within`). Returns whether it is gone. A process that is not (or no
    /// longer) a session of that environment's role is never signalled: the pid may have been
    /// reused.
    pub async fn end_backend(&self, environment: &str, pid: i32, within: Duration) -> Result<bool> {
        if !valid_environment_name(environment) {
            return Err(bad_name(environment));
        }
        let role = sql_role(environment);
        // Cancel first (the statement stops at once), then end the session itself.
        sqlx::query(
            "select pg_cancel_backend(pid) from pg_stat_activity where pid = $1 and usename = $2",
        )
        .bind(pid)
        .bind(&role)
        .execute(&self.pool)
        .await?;
        let ms = i64::try_from(within.as_millis()).unwrap_or(i64::MAX).max(1);
        let ended: Option<bool> = sqlx::query_scalar(
            "select pg_terminate_backend(pid, $3) from pg_stat_activity where pid = $1 and usename = $2",
        )
        .bind(pid)
        .bind(&role)
        .bind(ms)
        .fetch_optional(&self.pool)
        .await?;
        if ended != Some(false) {
            return Ok(true);
        }
        let still: bool = sqlx::query_scalar(
            "select exists (select 1 from pg_stat_activity where pid = $1 and usename = $2)",
        )
        .bind(pid)
        .bind(&role)
        .fetch_one(&self.pool)
        .await?;
        Ok(!still)
    }
}

/// Move `environment`'s registered tables of the old shared `staging` schema: outputs to
/// `staging_<env>` (owned by its role), receipts and their values-before tables to
/// `receipts_<env>` (owned by Drover's login, the receipt readable by the role). Returns how
/// many tables moved and how many were refused.
///
/// The old tables belonged to the shared role of user SQL, which could have hung code on
/// them. A receipt's tables that carry any (see [`CODE_ON_TABLE`]) stay where they are,
/// together, and are logged: Drover's login never owns a table that runs user code.
async fn move_old_layout(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    environment: &str,
) -> Result<(u64, u64)> {
    let old: bool =
        sqlx::query_scalar("select exists (select 1 from pg_namespace where nspname = $1)")
            .bind(OLD_STAGING_SCHEMA)
            .fetch_one(&mut **tx)
            .await?;
    if !old {
        return Ok((0, 0));
    }
    let rows: Vec<(uuid::Uuid, String, String, String)> = sqlx::query_as(
        "select run_id, task_id, kind, table_name from dataset
         where environment = $1 and dropped_at is null",
    )
    .bind(environment)
    .fetch_all(&mut **tx)
    .await?;
    if rows.is_empty() {
        return Ok((0, 0));
    }
    // The old tables belong to the old role: Drover's login joins it (where it may) to move
    // them; where it may not, moving fails with the server's reason.
    sqlx::raw_sql(
        "do $$ begin
           if exists (select 1 from pg_roles where rolname = 'drover_sql')
              and not pg_has_role(current_user, 'drover_sql', 'member') then
             grant drover_sql to current_user;
           end if;
         exception when insufficient_privilege or duplicate_object or unique_violation then null;
         end $$",
    )
    .execute(&mut **tx)
    .await?;
    let role = quote_ident(&sql_role(environment));
    let (mut moved, mut refused) = (0, 0);
    for (run_id, task_id, kind, table) in rows {
        let run = run_id.simple().to_string();
        let receipt = kind == "receipt";
        let (schema, tables) = if receipt {
            (
                receipts_schema(environment),
                vec![
                    table,
                    table_name(&run, &task_id, Some("before")),
                    table_name(&run, &task_id, Some("answers")),
                ],
            )
        } else {
            (staging_schema(environment), vec![table])
        };
        let mut present = Vec::new();
        for (i, t) in tables.into_iter().enumerate() {
            let exists: bool = sqlx::query_scalar(
                "select exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                                where n.nspname = $1 and c.relname = $2 and c.relkind = 'r')",
            )
            .bind(OLD_STAGING_SCHEMA)
            .bind(&t)
            .fetch_one(&mut **tx)
            .await?;
            if exists {
                present.push((i, t));
            }
        }
        if receipt {
            let mut offenders = Vec::new();
            for (_, t) in &present {
                // Nothing can be added to the table between the look and the move.
                sqlx::query(AssertSqlSafe(format!(
                    "lock table {} in access exclusive mode",
                    quoted_relation(OLD_STAGING_SCHEMA, t)
                )))
                .execute(&mut **tx)
                .await?;
                let reasons: Vec<String> = sqlx::query_scalar(CODE_ON_TABLE)
                    .bind(OLD_STAGING_SCHEMA)
                    .bind(t)
                    .fetch_one(&mut **tx)
                    .await?;
                if !reasons.is_empty() {
                    offenders.push((t.clone(), reasons.join(", ")));
                }
            }
            if let Some((first, _)) = offenders.first() {
                for (_, t) in &present {
                    let reason = offenders.iter().find(|(o, _)| o == t).map_or_else(
                        || format!("kept beside `{first}`: a receipt's tables move together"),
                        |(_, why)| format!("it has {why}, which would run as Drover's login"),
                    );
                    tracing::warn!(
                        environment,
                        table = %quoted_relation(OLD_STAGING_SCHEMA, t),
                        reason = %reason,
                        "left a receipt table of the old shared schema where it is; inspect it, and move it into the environment's receipts schema by hand if it is safe (revert cannot use it until then)"
                    );
                    refused += 1;
                }
                continue;
            }
        }
        for (i, t) in &present {
            let target = quoted_relation(&schema, t);
            let owner = if receipt {
                "current_user".to_owned()
            } else {
                role.clone()
            };
            let mut sql = format!(
                "alter table {} set schema {}; alter table {target} owner to {owner};",
                quoted_relation(OLD_STAGING_SCHEMA, t),
                quote_ident(&schema)
            );
            if receipt && *i == 0 {
                sql.push_str(&format!(" grant select on {target} to {role};"));
            }
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut **tx).await?;
            moved += 1;
        }
    }
    Ok((moved, refused))
}

/// What on table `$1.$2` could run code when its owner, or anyone, reads or writes it: each
/// in words (none: an empty array).
const CODE_ON_TABLE: &str = "
    select array_remove(array[
      case when exists (select 1 from pg_trigger where tgrelid = c.oid and not tgisinternal)
           then 'a trigger' end,
      case when c.relrowsecurity or c.relforcerowsecurity
                or exists (select 1 from pg_policy where polrelid = c.oid)
           then 'row-level security' end,
      case when c.relhasrules then 'a rule' end,
      case when exists (select 1 from pg_index i where i.indrelid = c.oid
                        and (i.indexprs is not null or i.indpred is not null))
           then 'an expression or partial index' end,
      case when exists (select 1 from pg_index i cross join unnest(i.indclass::oid[]) k(opc)
                        join pg_opclass o on o.oid = k.opc
                        where i.indrelid = c.oid and o.opcnamespace <> 'pg_catalog'::regnamespace)
           then 'an index with an operator class outside pg_catalog' end,
      case when exists (select 1 from pg_attrdef where adrelid = c.oid)
           then 'a column default or generated column' end,
      case when exists (select 1 from pg_attribute a join pg_type t on t.oid = a.atttypid
                        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                          and t.typnamespace <> 'pg_catalog'::regnamespace)
           then 'a column whose type is not in pg_catalog' end,
      case when exists (select 1 from pg_constraint where conrelid = c.oid and contype in ('c', 'f'))
           then 'a check or foreign-key constraint' end,
      case when exists (select 1 from pg_statistic_ext where stxrelid = c.oid)
           then 'extended statistics' end,
      case when exists (select 1 from pg_inherits where inhrelid = c.oid or inhparent = c.oid)
           then 'inheritance' end
    ]::text[], null)
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = $1 and c.relname = $2";

/// Lazily-connected pools per environment, as each environment's SQL role (for reading
/// staged rows, e.g. previews). Cloning shares them.
#[derive(Debug, Clone)]
pub struct StagingPools {
    store: Store,
    max_connections: u32,
    pools: Arc<Mutex<HashMap<String, PgPool>>>,
}

impl StagingPools {
    pub fn new(store: Store, max_connections: u32) -> Self {
        Self {
            store,
            max_connections,
            pools: Arc::default(),
        }
    }

    /// The pool of `environment`'s role.
    pub fn pool(&self, environment: &str) -> Result<PgPool> {
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = pools.get(environment) {
            return Ok(p.clone());
        }
        let pool = self.store.staging_pool(environment, self.max_connections)?;
        pools.insert(environment.to_owned(), pool.clone());
        Ok(pool)
    }
}
