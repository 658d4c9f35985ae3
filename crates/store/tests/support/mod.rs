//! A database of the test's own on the Postgres at DROVER_TEST_DATABASE_URL (default
//! 127.0.0.1:5432), migrated, and dropped by `drop_db`.

use drover_store::Store;
use uuid::Uuid;

pub(crate) struct Db {
    pub(crate) store: Store,
    pub(crate) admin: Store,
    pub(crate) name: String,
    /// The database's URL, for connections of a test's own.
    #[allow(dead_code)]
    pub(crate) url: String,
}

/// A new migrated database whose store has `pool` connections.
pub(crate) async fn db(pool: u32) -> Db {
    let db = empty_db(pool).await;
    db.store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
    db
}

/// A new database, not migrated, whose store has `pool` connections.
#[allow(dead_code)]
pub(crate) async fn empty_db(pool: u32) -> Db {
    let server = std::env::var("DROVER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("drover_test_{}", Uuid::new_v4().simple());
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    let store = Store::connect(&url, pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let admin = Store::connect(&server, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Db {
        store,
        admin,
        name,
        url,
    }
}

impl Db {
    pub(crate) async fn drop_db(self) {
        self.store.pool().close().await;
        let sql = format!("drop database if exists \"{}\" with (force)", self.name);
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(self.admin.pool())
            .await;
    }
}
