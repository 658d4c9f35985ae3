-- Approval of a return's writes (`returns: { require_approval: true }`): a return that planned
-- its writes waits, in a state of its own, until someone approves its plan; rejection or a
-- timeout fails it.
alter table task_instance drop constraint task_instance_state_check;
alter table task_instance add constraint task_instance_state_check
    check (state in ('pending', 'queued', 'running', 'success', 'failed', 'up_for_retry', 'skipped',
                     'upstream_failed', 'awaiting_approval'));

-- One row per request: the plan's totals, a digest of its content (so a later try can tell the
-- plan it is about to send is the one approved), and what became of it.
create table return_approval (
    id                bigserial primary key,
    task_instance_id  bigint not null references task_instance (id) on delete cascade,
    run_id            uuid not null references dag_run (id) on delete cascade,
    task_id           text not null,
    environment       text not null,
    dag_id            text not null,
    -- The try that planned.
    try_number        integer not null,
    digest            text not null,
    to_send           bigint not null,
    -- Null when the return keeps no values before the write (`snapshot: false`): it cannot
    -- tell a record it creates from one it updates.
    creates           bigint,
    updates           bigint,
    unchanged         bigint not null,
    withheld          bigint not null,
    rejected          bigint not null,
    state             text not null default 'pending'
                      check (state in ('pending', 'approved', 'rejected', 'expired', 'withdrawn')),
    requested_at      timestamptz not null default now(),
    expires_at        timestamptz not null,
    decided_by        text,
    decided_at        timestamptz,
    reason            text
);
create unique index return_approval_one_pending on return_approval (task_instance_id) where state = 'pending';
create index return_approval_pending on return_approval (expires_at) where state = 'pending';
create index return_approval_by_task on return_approval (task_instance_id, id desc);
create index return_approval_by_run on return_approval (run_id);
create index task_instance_awaiting on task_instance (environment) where state = 'awaiting_approval';

-- Notifications learn the event of a return waiting for approval.
alter table notification drop constraint notification_event_check;
alter table notification add constraint notification_event_check
    check (event in ('failure', 'retry_exhausted', 'recovery', 'deadline_missed', 'check_breach',
                     'slo_burn', 'warnings', 'approval_needed'));
