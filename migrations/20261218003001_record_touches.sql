-- Record history: one row per record a return's receipt holds (per try that wrote the
-- receipt), written in the transaction that creates the receipt. It answers "which runs
-- touched lead X, what did they change, and was it reverted" without reading receipts run by
-- run, and it outlives the receipts' retention: the scheduler deletes touches after 400 days
-- (`RECORD_HISTORY_DAYS`).
--
-- One row per record (not per field): `changes` holds every field the return sent, as
-- {"field": {"old": …, "new": …}} ("old" left out when the values before the write were not
-- read). A record that was unchanged, or rejected without a key, is one row with `{}` changes,
-- and one index entry serves a run's whole change to the record.
--
-- The values are lead data, so this table is Drover's own: no environment's SQL role is
-- granted anything on it (stricter than a receipt, which its environment's role may read);
-- the web server and the CLI show values only where the environment's `rows_visible_to`
-- allows, as for receipts.
create table record_touch (
    id              bigserial primary key,
    environment     text not null,
    -- The return's lookup field and the record's key as the return matched it (an email
    -- trimmed and lower-cased).
    lookup_field    text not null,
    key             text not null,
    map_id          bigint,
    -- The run's id. Not a checked foreign key: a touch is written by its run's own try (the run
    -- exists) and Drover never deletes runs, while the check is a trigger per row, which made
    -- a million-row return's touches take 40 s instead of 23 (load average 7).
    run_id          uuid not null,
    dag_id          text not null,
    task_id         text not null,
    try_number      integer not null,
    touched_at      timestamptz not null default now(),
    -- created, updated, accepted (an import that could not tell which), unchanged, rejected,
    -- warning, unknown (no answer from the MAP); `reverted` for a revert job's own rows.
    status          text not null,
    reason          text,
    changes         jsonb not null default '{}'::jsonb,
    -- Fields whose null was not written over a value.
    withheld        text[],
    -- Set when a revert wrote this touch's values back (by that revert job).
    reverted_at     timestamptz,
    reverted_by_job bigint,
    -- On a revert job's own rows: the job.
    revert_job      bigint
);

-- The history of a record by key, newest first; and by MAP id (a return keyed on id, or any
-- return whose record the MAP id names).
create index record_touch_by_key on record_touch (environment, lookup_field, key, touched_at desc, id desc);
create index record_touch_by_map_id on record_touch (environment, map_id, touched_at desc, id desc)
    where map_id is not null;
-- A return's touches: replaced by a retry's receipt, marked by its revert.
create index record_touch_by_return on record_touch (run_id, task_id, key);
