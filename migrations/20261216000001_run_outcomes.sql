-- What a return created (the rest of what it sent updated existing records), so a run can say
-- what it did to the leads without reading its receipt.
alter table task_try add column rows_created bigint;

-- Notifications learn the event of a run that succeeded with warnings.
alter table notification drop constraint notification_event_check;
alter table notification add constraint notification_event_check
    check (event in ('failure', 'retry_exhausted', 'recovery', 'deadline_missed', 'check_breach',
                     'slo_burn', 'warnings'));

-- Finding the problems of a page of runs: breached checks and rejected rows by run.
create index check_result_by_run_breached on check_result (run_id) where not passed;
