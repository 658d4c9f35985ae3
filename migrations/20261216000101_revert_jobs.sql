-- Reverts of returns run as queued jobs on the workers (which hold the MAP connections):
-- claimed under a lease, resumed by another worker when the lease expires, with progress.
create table revert_job (
    id bigserial primary key,
    run_id uuid not null references dag_run(id) on delete cascade,
    task_id text not null,
    environment text not null,
    state text not null check (state in ('queued','running','done','failed')),
    force boolean not null default false,
    requested_by text not null,
    requested_at timestamptz not null default now(),
    started_at timestamptz,
    finished_at timestamptz,
    worker_id text,
    lease_until timestamptz,
    total bigint,
    processed bigint not null default 0,
    restored bigint not null default 0,
    skipped_changed bigint not null default 0,
    refused bigint not null default 0,
    created_left bigint not null default 0,
    not_written bigint not null default 0,
    error text,
    -- The first 1,000 keys skipped because the record changed since the return.
    skipped_keys text[] not null default '{}',
    -- The first 1,000 refusals: [{ "key": …, "reason": … }].
    refusals jsonb not null default '[]'
);

-- One unfinished revert per return task.
create unique index revert_job_one_unfinished on revert_job (run_id, task_id)
    where state in ('queued', 'running');
create index revert_job_claimable on revert_job (state, lease_until)
    where state in ('queued', 'running');

-- Receipt keys a job has dealt with, recorded in the same statement as its progress: a
-- resumed job never sends them again.
create table revert_done (
    job_id bigint not null references revert_job(id) on delete cascade,
    key text not null,
    primary key (job_id, key)
);
