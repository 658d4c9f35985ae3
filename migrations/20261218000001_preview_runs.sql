-- A preview run (`drover dags test` without `--write`): its returns plan and stop before
-- anything is sent to the MAP.
alter table dag_run add column preview boolean not null default false;
