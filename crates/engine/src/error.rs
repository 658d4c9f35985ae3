use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] drover_store::StoreError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("DAG version {version_id} of `{dag_id}` is invalid: {message}")]
    InvalidVersion {
        version_id: i64,
        dag_id: String,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}
