//! Users, their roles (overall and per environment), browser sessions, API tokens and login
//! attempts. Passwords and tokens arrive here already hashed: the store never sees a secret.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use crate::{Result, Store, StoreError};

/// A user with their roles, as text (`viewer`, `operator`, `admin`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserRow {
    pub name: String,
    pub role: String,
    /// Roles that replace `role` in one environment.
    pub environment_roles: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
}

/// Who a session or token belongs to, and the session's CSRF token (none for API tokens).
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: UserRow,
    pub csrf_token: Option<String>,
}

#[derive(FromRow)]
struct RawUser {
    name: String,
    role: String,
    environment_roles: sqlx::types::Json<BTreeMap<String, String>>,
    created_at: DateTime<Utc>,
    disabled: bool,
    csrf_token: Option<String>,
}

impl From<RawUser> for Authenticated {
    fn from(r: RawUser) -> Self {
        Authenticated {
            user: UserRow {
                name: r.name,
                role: r.role,
                environment_roles: r.environment_roles.0,
                created_at: r.created_at,
                disabled: r.disabled,
            },
            csrf_token: r.csrf_token,
        }
    }
}

/// The columns of a user with the roles per environment folded into one JSON object.
const USER_COLUMNS: &str = "u.name, u.role, u.created_at, u.disabled_at is not null as disabled, \
     coalesce((select jsonb_object_agg(r.environment, r.role) from user_environment_role r \
               where r.user_name = u.name), '{}'::jsonb) as environment_roles";

/// An API token's listing (never the token itself).
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct ApiTokenRow {
    pub id: i64,
    pub user_name: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Add a user. A name already taken is a conflict.
    pub async fn create_user(&self, name: &str, password_hash: &str, role: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.create_user(name, password_hash, role).await?;
        tx.commit().await
    }

    /// Replace a user's password; their browser sessions end.
    pub async fn set_password(&self, name: &str, password_hash: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.set_password(name, password_hash).await?;
        tx.commit().await
    }

    /// Set a user's role; see [`Tx::set_role`].
    pub async fn set_role(
        &self,
        name: &str,
        environment: Option<&str>,
        role: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.set_role(name, environment, role).await?;
        tx.commit().await
    }

    /// Disable or enable a user; see [`Tx::set_disabled`].
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.set_disabled(name, disabled).await?;
        tx.commit().await
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserRow>> {
        let raw: Option<RawUser> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS}, null::text as csrf_token from app_user u where u.name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(raw.map(|r| Authenticated::from(r).user))
    }

    pub async fn users(&self) -> Result<Vec<UserRow>> {
        let raw: Vec<RawUser> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS}, null::text as csrf_token from app_user u order by u.name"
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(raw
            .into_iter()
            .map(|r| Authenticated::from(r).user)
            .collect())
    }

    pub async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("select count(*) from app_user")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The stored password hash of an enabled user (for verifying a login).
    pub async fn password_hash(&self, name: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "select password_hash from app_user where name = $1 and disabled_at is null",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Start a browser session lasting `ttl_secs`; see [`Tx::create_session`](crate::Tx::create_session).
    pub async fn create_session(
        &self,
        token_hash: &[u8],
        user: &str,
        csrf_token: &str,
        ttl_secs: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.create_session(token_hash, user, csrf_token, ttl_secs)
            .await?;
        tx.commit().await
    }

    /// The user of a live session (not expired, user not disabled).
    pub async fn session_user(&self, token_hash: &[u8]) -> Result<Option<Authenticated>> {
        let raw: Option<RawUser> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS}, s.csrf_token from web_session s join app_user u on u.name = s.user_name \
             where s.token_hash = $1 and s.expires_at > now() and u.disabled_at is null"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(raw.map(Authenticated::from))
    }

    /// End a session (logout); see [`Tx::delete_session`](crate::Tx::delete_session).
    pub async fn delete_session(&self, token_hash: &[u8]) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.delete_session(token_hash).await?;
        tx.commit().await
    }

    /// Forget expired sessions and login attempts older than a day.
    pub async fn prune_sessions(&self) -> Result<u64> {
        let gone = sqlx::query("delete from web_session where expires_at < now()")
            .execute(&self.pool)
            .await?
            .rows_affected();
        sqlx::query("delete from login_attempt where at < now() - interval '1 day'")
            .execute(&self.pool)
            .await?;
        Ok(gone)
    }

    pub async fn create_api_token(
        &self,
        user: &str,
        label: &str,
        token_hash: &[u8],
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let id = tx.create_api_token(user, label, token_hash).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The user of a live API token.
    pub async fn token_user(&self, token_hash: &[u8]) -> Result<Option<Authenticated>> {
        let raw: Option<RawUser> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS}, null::text as csrf_token from api_token t join app_user u on u.name = t.user_name \
             where t.token_hash = $1 and t.revoked_at is null and u.disabled_at is null"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(raw.map(Authenticated::from))
    }

    pub async fn api_tokens(&self, user: Option<&str>) -> Result<Vec<ApiTokenRow>> {
        Ok(sqlx::query_as(
            "select id, user_name, label, created_at, revoked_at from api_token \
             where ($1::text is null or user_name = $1) order by id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revoke a token; `false` when it was not live.
    pub async fn revoke_api_token(&self, id: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let revoked = tx.revoke_api_token(id).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    pub async fn record_login_attempt(&self, user: &str, client: &str, ok: bool) -> Result<()> {
        sqlx::query("insert into login_attempt (user_name, client, succeeded) values ($1, $2, $3)")
            .bind(user)
            .bind(client)
            .bind(ok)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Failed logins for `user` in the last `window_secs` since their last successful one.
    pub async fn recent_failed_logins(&self, user: &str, window_secs: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "select count(*) from login_attempt where user_name = $1 and not succeeded \
               and at > now() - make_interval(secs => $2) \
               and at > coalesce((select max(at) from login_attempt where user_name = $1 and succeeded), '-infinity')",
        )
        .bind(user)
        .bind(window_secs as f64)
        .fetch_one(&self.pool)
        .await?)
    }
}

impl crate::Tx {
    /// Start a browser session lasting `ttl_secs`, in this transaction (with the login's
    /// audit event: a login that cannot be audited leaves no session).
    pub async fn create_session(
        &mut self,
        token_hash: &[u8],
        user: &str,
        csrf_token: &str,
        ttl_secs: i64,
    ) -> Result<()> {
        sqlx::query(
            "insert into web_session (token_hash, user_name, csrf_token, expires_at) \
             values ($1, $2, $3, now() + make_interval(secs => $4))",
        )
        .bind(token_hash)
        .bind(user)
        .bind(csrf_token)
        .bind(ttl_secs as f64)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// End a session (logout), in this transaction. Ending one that is gone is not an error.
    pub async fn delete_session(&mut self, token_hash: &[u8]) -> Result<()> {
        sqlx::query("delete from web_session where token_hash = $1")
            .bind(token_hash)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Add a user. A name already taken is a conflict.
    pub async fn create_user(&mut self, name: &str, password_hash: &str, role: &str) -> Result<()> {
        let inserted = sqlx::query(
            "insert into app_user (name, password_hash, role) values ($1, $2, $3) \
             on conflict (name) do nothing",
        )
        .bind(name)
        .bind(password_hash)
        .bind(role)
        .execute(self.conn())
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "a user named `{name}` already exists"
            )));
        }
        Ok(())
    }

    /// Replace a user's password; their browser sessions end.
    pub async fn set_password(&mut self, name: &str, password_hash: &str) -> Result<()> {
        let tx = self.conn();
        let changed = sqlx::query(
            "update app_user set password_hash = $2, password_changed_at = now() where name = $1",
        )
        .bind(name)
        .bind(password_hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(no_user(name));
        }
        sqlx::query("delete from web_session where user_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// Set a user's role: overall (`environment` none) or in one environment (`role` none
    /// removes that environment's role, so the overall one applies again).
    pub async fn set_role(
        &mut self,
        name: &str,
        environment: Option<&str>,
        role: Option<&str>,
    ) -> Result<()> {
        let tx = self.conn();
        let known: Option<String> =
            sqlx::query_scalar("select name from app_user where name = $1 for update")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if known.is_none() {
            return Err(no_user(name));
        }
        match (environment, role) {
            (None, Some(role)) => {
                sqlx::query("update app_user set role = $2 where name = $1")
                    .bind(name)
                    .bind(role)
                    .execute(&mut *tx)
                    .await?;
            }
            (Some(env), Some(role)) => {
                sqlx::query(
                    "insert into user_environment_role (user_name, environment, role) values ($1, $2, $3) \
                     on conflict (user_name, environment) do update set role = excluded.role",
                )
                .bind(name)
                .bind(env)
                .bind(role)
                .execute(&mut *tx)
                .await?;
            }
            (Some(env), None) => {
                sqlx::query(
                    "delete from user_environment_role where user_name = $1 and environment = $2",
                )
                .bind(name)
                .bind(env)
                .execute(&mut *tx)
                .await?;
            }
            (None, None) => {}
        }
        Ok(())
    }

    /// Disable or enable a user; disabling ends their sessions and their tokens stop working.
    pub async fn set_disabled(&mut self, name: &str, disabled: bool) -> Result<()> {
        let tx = self.conn();
        let changed = sqlx::query(
            "update app_user set disabled_at = case when $2 then now() else null end where name = $1",
        )
        .bind(name)
        .bind(disabled)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(no_user(name));
        }
        if disabled {
            sqlx::query("delete from web_session where user_name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    pub async fn create_api_token(
        &mut self,
        user: &str,
        label: &str,
        token_hash: &[u8],
    ) -> Result<i64> {
        let tx = self.conn();
        let known: Option<String> =
            sqlx::query_scalar("select name from app_user where name = $1 for update")
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
        if known.is_none() {
            return Err(no_user(user));
        }
        Ok(sqlx::query_scalar(
            "insert into api_token (user_name, label, token_hash) values ($1, $2, $3) returning id",
        )
        .bind(user)
        .bind(label)
        .bind(token_hash)
        .fetch_one(&mut *tx)
        .await?)
    }

    /// Revoke a token; `false` when it was not live.
    pub async fn revoke_api_token(&mut self, id: i64) -> Result<bool> {
        Ok(sqlx::query(
            "update api_token set revoked_at = now() where id = $1 and revoked_at is null returning id",
        )
        .bind(id)
        .fetch_optional(self.conn())
        .await?
        .is_some())
    }
}

fn no_user(name: &str) -> StoreError {
    StoreError::NotFound(format!("no user named `{name}`"))
}
