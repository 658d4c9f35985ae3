-- Runs started by events: a webhook's (one event, or a batch of them), another DAG's dataset,
-- or a replay of recorded events.
alter table dag_run drop constraint dag_run_run_type_check;
alter table dag_run add constraint dag_run_run_type_check
    check (run_type in ('scheduled', 'manual', 'backfill', 'event', 'dataset', 'replay'));

-- A run gathering a batch of events waits, queued, until it has `batch_max` events or
-- `batch_until` passes; no event joins it once it started.
alter table dag_run add column event_count   integer not null default 0;
alter table dag_run add column batch_trigger text;
alter table dag_run add column batch_until   timestamptz;
alter table dag_run add column batch_max     integer;
create index dag_run_gathering on dag_run (dag_id, environment, batch_trigger)
    where state = 'queued' and batch_trigger is not null;

-- Every event, as received: what it was, where from, which run it went to. Kept with its run.
create table event (
    id              uuid primary key,
    environment     text not null references environment (name),
    dag_id          text not null,
    -- The webhook's name, or `dataset:<dag>.<task>`.
    trigger         text not null,
    kind            text not null check (kind in ('webhook', 'dataset', 'replay')),
    received_at     timestamptz not null default now(),
    -- Who sent it: the sender's address and agent, the producing run, or who replayed it.
    source          text not null,
    idempotency_key text,
    payload         jsonb not null,
    run_id          uuid references dag_run (id) on delete cascade,
    replay_of       uuid references event (id) on delete set null
);
-- A repeated key is the same event.
create unique index event_idempotency on event (environment, dag_id, trigger, idempotency_key)
    where idempotency_key is not null;
create index event_by_dag on event (dag_id, environment, received_at desc);
create index event_by_run on event (run_id, received_at);
