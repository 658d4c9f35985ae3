-- Drover's engine: DAG versions per environment, runs, task instances with their tries and
-- logs, workers, and the audit trail. Postgres is the single source of truth.

create table environment (
    name        text primary key,
    ord         integer not null,
    spec        jsonb not null,
    updated_at  timestamptz not null default now()
);

-- One row per distinct content of a DAG file. `blob_id` is the content's id (the git blob id
-- when read from git, a hash when read from a folder); `commit_sha` where it was first seen.
create table dag_version (
    id          bigserial primary key,
    dag_id      text not null,
    path        text not null,
    blob_id     text not null,
    commit_sha  text,
    source      text not null,
    created_at  timestamptz not null default now(),
    constraint dag_version_dag_blob_key unique (dag_id, blob_id)
);

-- Which version of each DAG an environment runs, and whether it is paused there.
create table dag_env (
    dag_id       text not null,
    environment  text not null references environment (name),
    version_id   bigint not null references dag_version (id),
    paused       boolean not null default false,
    active       boolean not null default true,
    updated_at   timestamptz not null default now(),
    primary key (dag_id, environment)
);

create table dag_run (
    id              uuid primary key,
    dag_id          text not null,
    environment     text not null references environment (name),
    version_id      bigint not null references dag_version (id),
    run_type        text not null check (run_type in ('scheduled', 'manual', 'backfill')),
    logical_date    timestamptz not null,
    interval_start  timestamptz not null,
    interval_end    timestamptz not null,
    state           text not null check (state in ('queued', 'running', 'success', 'failed')),
    params          jsonb not null default '{}',
    triggered_by    text,
    created_at      timestamptz not null default now(),
    started_at      timestamptz,
    finished_at     timestamptz
);
-- The scheduler can never create the run of an interval twice.
create unique index dag_run_interval_key on dag_run (dag_id, environment, logical_date)
    where run_type in ('scheduled', 'backfill');
create index dag_run_active on dag_run (dag_id, environment, logical_date) where state in ('queued', 'running');
create index dag_run_history on dag_run (dag_id, environment, logical_date desc);
create index dag_run_created on dag_run (created_at desc);

create table task_instance (
    id                    bigserial primary key,
    run_id                uuid not null references dag_run (id) on delete cascade,
    task_id               text not null,
    state                 text not null check (state in ('pending', 'queued', 'running', 'success', 'failed',
                                                         'up_for_retry', 'skipped', 'upstream_failed')),
    upstream              text[] not null default '{}',
    trigger_rule          text not null,
    is_leaf               boolean not null,
    priority              integer not null default 0,
    -- Tries so far (the running one included), and how many the task may have.
    try_number            integer not null default 0,
    max_tries             integer not null,
    -- Retries the DAG allows (so clearing a task can grant them again).
    retries               integer not null,
    -- Tries lost with their worker (lease expired): retried by the system, up to a limit.
    lost_count            integer not null default 0,
    retry_delay_secs      integer not null,
    retry_backoff         text not null,
    max_retry_delay_secs  integer not null,
    timeout_secs          integer not null,
    queued_at             timestamptz,
    started_at            timestamptz,
    finished_at           timestamptz,
    next_attempt_at       timestamptz,
    worker_id             text,
    lease_until           timestamptz,
    last_error            text,
    constraint task_instance_run_task_key unique (run_id, task_id)
);
create index task_instance_claimable on task_instance (priority desc, id) where state = 'queued';
create index task_instance_retry on task_instance (next_attempt_at) where state = 'up_for_retry';
create index task_instance_running on task_instance (lease_until) where state = 'running';
create index task_instance_pending on task_instance (run_id) where state = 'pending';

create table task_try (
    task_instance_id  bigint not null references task_instance (id) on delete cascade,
    try_number        integer not null,
    worker_id         text,
    state             text not null,
    started_at        timestamptz,
    finished_at       timestamptz,
    exit_code         integer,
    error             text,
    primary key (task_instance_id, try_number)
);

create table task_log (
    id                bigserial primary key,
    task_instance_id  bigint not null references task_instance (id) on delete cascade,
    try_number        integer not null,
    at                timestamptz not null default clock_timestamp(),
    stream            text not null check (stream in ('stdout', 'stderr', 'system')),
    line              text not null
);
create index task_log_by_try on task_log (task_instance_id, try_number, id);

create table worker (
    id            text primary key,
    hostname      text not null,
    pid           integer not null,
    concurrency   integer not null,
    started_at    timestamptz not null default now(),
    heartbeat_at  timestamptz not null default now(),
    stopped_at    timestamptz
);

create table audit_event (
    id           bigserial primary key,
    at           timestamptz not null default now(),
    actor        text not null,
    action       text not null,
    environment  text,
    dag_id       text,
    run_id       uuid,
    details      jsonb not null default '{}'
);
create index audit_event_at on audit_event (at desc);

-- The wait before the next try, after `tries` tries of the task's own (not lost ones).
-- Mirrors drover_spec::dag::RetryPolicy::delay_before.
create function drover_retry_delay(backoff text, delay_secs integer, max_delay_secs integer, tries integer)
returns interval language sql immutable as $$
    select make_interval(secs => least(max_delay_secs::float8,
        case backoff
            when 'constant' then delay_secs::float8
            when 'linear' then delay_secs::float8 * greatest(tries, 1)
            else delay_secs::float8 * power(2, least(greatest(tries, 1) - 1, 32))
        end))
$$;
