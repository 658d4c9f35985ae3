-- Each environment runs at most `concurrency` task instances at once: claims pick queued tasks
-- per environment, which needs the environment on the task instance itself.
alter table task_instance add column environment text;
update task_instance t set environment = r.environment from dag_run r where r.id = t.run_id;
alter table task_instance alter column environment set not null;
create index task_instance_queued_by_env on task_instance (environment, priority desc, id) where state = 'queued';
create index task_instance_running_by_env on task_instance (environment) where state = 'running';
