//! A private Postgres cluster for tests that restart their database.
#![allow(unreachable_pub)]

use drover_store::embedded::{EmbeddedPostgres, free_port};

pub struct PrivatePg {
    pub pg: EmbeddedPostgres,
    _dir: tempfile::TempDir,
}

impl PrivatePg {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("drover-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("{e}"));
        let port = free_port().unwrap_or_else(|e| panic!("{e}"));
        let pg = EmbeddedPostgres::new(dir.path(), port).unwrap_or_else(|e| panic!("{e}"));
        pg.start().unwrap_or_else(|e| panic!("{e}"));
        Self { pg, _dir: dir }
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self.pg.stop();
    }
}
