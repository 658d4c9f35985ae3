-- The promotion gate asks whether a DAG's content (its version) ran clean in the environment
-- below, at any commit: one index probe per changed DAG, however long the history.
create index dag_run_success_by_version on dag_run (environment, version_id)
    where state = 'success' and not preview;
