-- Run lists are ordered by when a run ran (its start, or its creation while it is queued),
-- per DAG and environment, per environment, and across all runs.
create index dag_run_history_ran on dag_run (dag_id, environment, (coalesce(started_at, created_at)) desc, created_at desc);
create index dag_run_env_ran on dag_run (environment, (coalesce(started_at, created_at)) desc, created_at desc);
create index dag_run_ran on dag_run ((coalesce(started_at, created_at)) desc, created_at desc);
