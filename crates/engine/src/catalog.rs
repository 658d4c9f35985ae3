//! Parsed DAG versions, cached by version id (a version never changes once stored).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use drover_spec::dag::{Dag, load_dag};
use drover_store::Store;

use crate::EngineError;

#[derive(Debug, Clone)]
pub struct DagCache {
    store: Store,
    dags: Arc<Mutex<HashMap<i64, Arc<Dag>>>>,
    /// Misses load one at a time: 32 tasks of a cold batch would otherwise each parse the same
    /// 1,000-task DAG.
    loading: Arc<tokio::sync::Mutex<()>>,
}

impl DagCache {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            dags: Arc::new(Mutex::new(HashMap::new())),
            loading: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn cached(&self, version_id: i64) -> Option<Arc<Dag>> {
        self.dags
            .lock()
            .ok()
            .and_then(|m| m.get(&version_id).cloned())
    }

    /// The DAG of `version_id`, parsed once.
    pub async fn get(&self, version_id: i64) -> Result<Arc<Dag>, EngineError> {
        if let Some(dag) = self.cached(version_id) {
            return Ok(dag);
        }
        let _one_at_a_time = self.loading.lock().await;
        if let Some(dag) = self.cached(version_id) {
            return Ok(dag);
        }
        let row = self.store.dag_version(version_id).await?;
        let dag =
            load_dag(&row.path, &row.source).map_err(|diags| EngineError::InvalidVersion {
                version_id,
                dag_id: row.dag_id.clone(),
                message: diags.first().map(ToString::to_string).unwrap_or_default(),
            })?;
        let dag = Arc::new(dag);
        if let Ok(mut m) = self.dags.lock() {
            m.insert(version_id, dag.clone());
        }
        Ok(dag)
    }

    /// Only what is cached (for synchronous callers); see [`DagCache::get`].
    pub fn get_cached(&self, version_id: i64) -> Option<Arc<Dag>> {
        self.cached(version_id)
    }
}
