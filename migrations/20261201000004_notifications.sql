-- Notifications: one row per (channel, run, event, task), so an event is told once however
-- many schedulers look; what happened to it (sent, suppressed and why, failed) is kept.
create table notification (
    id               bigserial primary key,
    channel          text not null,
    environment      text not null,
    dag_id           text not null,
    run_id           uuid not null references dag_run (id) on delete cascade,
    task_id          text not null default '',
    event            text not null check (event in ('failure', 'retry_exhausted', 'recovery')),
    state            text not null default 'pending'
                     check (state in ('pending', 'sent', 'suppressed', 'failed')),
    reason           text,
    attempts         integer not null default 0,
    next_attempt_at  timestamptz not null default now(),
    created_at       timestamptz not null default now(),
    sent_at          timestamptz,
    unique (channel, environment, run_id, event, task_id)
);
create index notification_due on notification (next_attempt_at) where state = 'pending';
create index notification_recent on notification (channel, sent_at) where state = 'sent';
-- The event scan reads recent finishes only (dag_run_finished serves runs).
create index task_instance_failed_finished on task_instance (finished_at) where state = 'failed';
