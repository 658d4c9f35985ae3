-- Deadlines: when a run or task must have finished (from the DAG's `deadline:`), and whether
-- it did. `pending` until it succeeds in time (`met`) or the moment passes (`missed`).
alter table dag_run
    add column deadline_at        timestamptz,
    add column deadline_state     text check (deadline_state in ('pending', 'met', 'missed')),
    add column deadline_missed_at timestamptz;
alter table task_instance
    add column deadline_at        timestamptz,
    add column deadline_state     text check (deadline_state in ('pending', 'met', 'missed')),
    add column deadline_missed_at timestamptz;
create index dag_run_deadline_pending on dag_run (deadline_at) where deadline_state = 'pending';
create index task_instance_deadline_pending on task_instance (deadline_at) where deadline_state = 'pending';
create index dag_run_deadline_missed on dag_run (deadline_missed_at) where deadline_state = 'missed';
create index task_instance_deadline_missed on task_instance (deadline_missed_at) where deadline_state = 'missed';

-- Notifications learn the new events.
alter table notification drop constraint notification_event_check;
alter table notification add constraint notification_event_check
    check (event in ('failure', 'retry_exhausted', 'recovery', 'deadline_missed', 'check_breach', 'slo_burn'));
create index check_result_breached on check_result (checked_at) where not passed;
