-- A run's problems include a revert that skipped records changed since: its latest revert
-- job per return task, found by run.
create index revert_job_by_run on revert_job (run_id, task_id, id desc);
