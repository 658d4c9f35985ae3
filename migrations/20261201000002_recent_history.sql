-- `/metrics` reads recent history: runs finished in the last day, tries of the last hour.
create index dag_run_finished on dag_run (finished_at) where finished_at is not null;
create index task_try_finished on task_try (finished_at) where finished_at is not null;
-- The runs list: newest first, across DAGs, in one environment or all.
create index dag_run_newest on dag_run (logical_date desc, created_at desc);
create index dag_run_env_newest on dag_run (environment, logical_date desc, created_at desc);
