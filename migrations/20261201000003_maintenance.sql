-- Maintenance mode: while the row exists (and its `until`, if any, has not passed) no run is
-- created or started and no task is claimed; running tasks finish.
create table maintenance (
    id          integer primary key default 1 check (id = 1),
    message     text not null,
    until       timestamptz,
    started_by  text not null,
    started_at  timestamptz not null default now()
);
