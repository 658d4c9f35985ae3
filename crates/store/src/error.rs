use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("invalid database URL: {0}")]
    Config(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The request cannot be done as asked (a range too wide, nothing in it): say what to change.
    #[error("{0}")]
    Invalid(String),
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether retrying later may succeed (connection lost, Postgres restarting, serialization).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Protocol(_) => true,
                sqlx::Error::Database(db) => matches!(
                    db.code().as_deref(),
                    Some(
                        "40001"
                            | "40P01"
                            | "57P01"
                            | "57P02"
                            | "57P03"
                            | "08000"
                            | "08003"
                            | "08006"
                    )
                ),
                _ => false,
            },
            _ => false,
        }
    }
}
