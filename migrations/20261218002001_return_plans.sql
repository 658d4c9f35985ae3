-- A return's plan, recorded before it writes (and by a preview run, which writes nothing):
-- per try its totals and a digest of the plan's records, so a later look can tell the plan
-- did not change. The records themselves (key, status, field old → new) are environment
-- data: they live in the environment's receipts schema, in the table `table_name`.
create table return_plan (
    run_id          uuid not null references dag_run (id) on delete cascade,
    task_id         text not null,
    try_number      integer not null,
    environment     text not null,
    -- The records' table in the environment's receipts schema (one per task, replaced by
    -- each try: it holds the latest try's records).
    table_name      text not null,
    -- The lookup field (`email`, `id`): what a record without a key lacks.
    lookup          text not null,
    -- Whether values before were read (`snapshot`): without them creates and updates are
    -- not told apart and old values are unknown.
    snapshot        boolean not null,
    preview         boolean not null,
    rows            bigint not null,
    creates         bigint,
    updates         bigint,
    sends           bigint not null,
    unchanged       bigint not null,
    not_sent        bigint not null,
    nulls_withheld  bigint not null,
    -- Records whose field changes, by field: {"leadScore": 340, "country": 12} (updates, or
    -- every record sent without a snapshot).
    field_changes   jsonb not null default '{}',
    digest          text not null,
    recorded_at     timestamptz not null default now(),
    primary key (run_id, task_id, try_number)
);

-- The plan's records are registered like outputs and receipts, for retention.
alter table dataset drop constraint if exists dataset_kind_check;
alter table dataset add constraint dataset_kind_check check (kind in ('output', 'receipt', 'plan'));
