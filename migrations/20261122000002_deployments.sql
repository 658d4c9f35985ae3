-- DAGs from git: which commit each environment runs, how it got there, and the files that
-- failed to import.

-- The commit each run was created from (its environment's deployment at the time).
alter table dag_run add column commit_sha text;

-- Every change of an environment's commit: a sync of the tracked branch, a promotion or a
-- rollback. The latest row is the environment's current deployment.
create table deployment (
    id            bigserial primary key,
    environment   text not null references environment (name),
    commit_sha    text not null,
    previous_sha  text,
    kind          text not null check (kind in ('sync', 'promote', 'rollback')),
    actor         text not null,
    approved_by   text,
    note          text,
    changed_dags  jsonb not null default '[]',
    created_at    timestamptz not null default now()
);
create index deployment_by_env on deployment (environment, id desc);

-- Promotions waiting for a second person's approval.
create table promotion_request (
    id              bigserial primary key,
    environment     text not null references environment (name),
    commit_sha      text not null,
    from_environment text,
    requested_by    text not null,
    note            text,
    state           text not null check (state in ('pending', 'applied', 'rejected')),
    decided_by      text,
    created_at      timestamptz not null default now(),
    decided_at      timestamptz
);
create unique index promotion_request_one_pending on promotion_request (environment) where state = 'pending';

-- Files that failed validation at an environment's commit; their DAGs keep their last good
-- version meanwhile.
create table import_error (
    environment  text not null references environment (name),
    path         text not null,
    commit_sha   text not null,
    message      text not null,
    created_at   timestamptz not null default now(),
    primary key (environment, path)
);
