-- A return's rows whose record already held every value, so nothing was sent for them: the
-- run's sentence says so ("1,200 leads unchanged, not sent").
alter table task_try add column rows_unchanged bigint;
