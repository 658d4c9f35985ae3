-- Freshness (`freshness: { max_age: 26h }` on a DAG or a task): when each DAG's and task's
-- data was last refreshed in each environment, when each DAG came into each environment (data
-- never refreshed counts its age from then), and every episode of stale data, so each is told
-- once and the history is kept.

-- When the DAG first came into the environment (kept when its version changes, or when it
-- leaves and comes back). Rows from before this migration take their first run, or their
-- last change when that is earlier.
alter table dag_env add column added_at timestamptz;
update dag_env d set added_at = least(d.updated_at,
    (select min(r.created_at) from dag_run r where r.dag_id = d.dag_id and r.environment = d.environment));
alter table dag_env alter column added_at set default now();
alter table dag_env alter column added_at set not null;

-- The latest refresh of each DAG's data (`task_id` '') and each task's, per environment:
-- written in the transaction that finishes a run as succeeded (warnings included) or records
-- a task's successful try, never by a preview run, nor by marking a run by hand (nothing ran).
-- One primary-key probe answers "how old is it", however long the history. `run_id` is the
-- run that refreshed it (not a checked foreign key: runs are never deleted). The scheduler
-- adds a row without a refresh (both null) for what declares `freshness` and never was
-- refreshed: the row is what a refresh and the opening of a stale episode both lock, so an
-- episode is never opened on data a refresh just made fresh.
create table data_refresh (
    environment   text not null,
    dag_id        text not null,
    task_id       text not null default '',
    refreshed_at  timestamptz,
    run_id        uuid,
    primary key (environment, dag_id, task_id),
    constraint data_refresh_by_run check ((refreshed_at is null) = (run_id is null))
);

-- What the history says so far: runs that finished succeeded on their own (no task failed,
-- every succeeded task by a successful try: not marked), and tasks' successful tries.
insert into data_refresh (environment, dag_id, task_id, refreshed_at, run_id)
select distinct on (r.environment, r.dag_id) r.environment, r.dag_id, '', r.finished_at, r.id
from dag_run r
where r.state = 'success' and not r.preview and r.finished_at is not null
  and not exists (select 1 from task_instance t where t.run_id = r.id
                  and (t.state in ('failed', 'upstream_failed')
                       or (t.state = 'success' and not exists (
                             select 1 from task_try tt where tt.task_instance_id = t.id
                               and tt.try_number = t.try_number and tt.state = 'success'))))
order by r.environment, r.dag_id, r.finished_at desc;

insert into data_refresh (environment, dag_id, task_id, refreshed_at, run_id)
select distinct on (t.environment, r.dag_id, t.task_id) t.environment, r.dag_id, t.task_id, t.finished_at, t.run_id
from task_instance t
join dag_run r on r.id = t.run_id
join task_try tt on tt.task_instance_id = t.id and tt.try_number = t.try_number and tt.state = 'success'
where t.state = 'success' and not r.preview and t.finished_at is not null
order by t.environment, r.dag_id, t.task_id, t.finished_at desc;

-- One row per time a DAG's data (`task_id` '') or a task's went stale in an environment:
-- opened by the scheduler when its age passed `max_age`, ended by the refresh that made it
-- fresh again (in that refresh's transaction) or when nothing asks for it any more.
create table stale_episode (
    id                 bigserial primary key,
    environment        text not null,
    dag_id             text not null,
    task_id            text not null default '',
    -- The `max_age` the DAG asked for when it went stale.
    max_age_secs       bigint not null check (max_age_secs > 0),
    -- The refresh its age counts from (null: never refreshed), and the moment it counts from
    -- (that refresh, or when the DAG came into the environment).
    last_refreshed_at  timestamptz,
    counted_from       timestamptz not null,
    -- counted_from + max_age.
    stale_since        timestamptz not null,
    opened_at          timestamptz not null default now(),
    cleared_at         timestamptz,
    -- refreshed: by `cleared_by_run`; not_required: the DAG or its freshness left the
    -- environment, or a larger `max_age` makes the data fresh.
    cleared_because    text check (cleared_because in ('refreshed', 'not_required')),
    cleared_by_run     uuid,
    -- When the first channel was told.
    notified_at        timestamptz,
    constraint stale_episode_cleared check ((cleared_at is null) = (cleared_because is null))
);
-- At most one open episode per DAG (or task) and environment, whoever opens it.
create unique index stale_episode_one_open on stale_episode (environment, dag_id, task_id)
    where cleared_at is null;
create index stale_episode_history on stale_episode (environment, dag_id, opened_at desc);
create index stale_episode_by_run on stale_episode (cleared_by_run) where cleared_by_run is not null;

-- A `stale` notification is about an episode, not a run: one per channel and episode.
alter table notification alter column run_id drop not null;
alter table notification add column stale_episode bigint references stale_episode (id) on delete cascade;
alter table notification add constraint notification_about
    check (run_id is not null or stale_episode is not null);
create unique index notification_one_per_episode on notification (channel, stale_episode)
    where stale_episode is not null;
alter table notification drop constraint notification_event_check;
alter table notification add constraint notification_event_check
    check (event in ('failure', 'retry_exhausted', 'recovery', 'deadline_missed', 'check_breach',
                     'slo_burn', 'warnings', 'approval_needed', 'stale'));
