-- Completing a task costs O(its downstream), not O(its run) (issue #20).
--
-- Each task instance keeps how many of its upstream tasks ended in each outcome its trigger
-- rule reads (`up_success`; `up_failed`, counting failed and upstream_failed; `up_skipped`) and
-- how many it has (`up_total`), and lists the tasks downstream of it (`downstream`, the
-- inverse of `upstream`, filled when the run's task instances are made). Deciding a pending
-- task then reads its own row instead of joining every upstream row: the sink of a fan-in of
-- 10,000 is decided from one row, not 10,000, at each of the 10,000 completions.
--
-- One statement-level trigger keeps the counters right for every statement that changes
-- `state`, whatever code path it comes from (a completion, a skip or upstream_failed, the
-- reaper, a timeout, clearing back to pending, a run marked by an operator, an approval): it
-- compares the statement's old and new rows, sums the changes into and out of each outcome per
-- downstream task, and applies them in one UPDATE, locking the rows it updates in id order (so
-- two statements counting into the same tasks cannot deadlock each other). The rows it updates
-- hold their lock until the transaction ends: concurrent completions into one fan-in's sink
-- take turns on the sink's row, and the last of them sees every outcome counted, so the sink is
-- queued exactly once.
alter table task_instance
    add column downstream text[] not null default '{}',
    add column up_total   integer not null default 0,
    add column up_success integer not null default 0,
    add column up_failed  integer not null default 0,
    add column up_skipped integer not null default 0;

-- Existing rows, running runs included: each edge once (an upstream named twice counts once).
with edge as (
    select d.run_id, e.up, d.task_id as down
    from task_instance d
    cross join lateral (select distinct x from unnest(d.upstream) x) e(up)),
inverse as (
    select run_id, up, array_agg(down order by down) as downstream from edge group by run_id, up)
update task_instance t set downstream = i.downstream
from inverse i
where t.run_id = i.run_id and t.task_id = i.up;

with counts as (
    select d.id,
           count(*)::int as total,
           count(*) filter (where u.state = 'success')::int as success,
           count(*) filter (where u.state in ('failed', 'upstream_failed'))::int as failed,
           count(*) filter (where u.state = 'skipped')::int as skipped
    from task_instance d
    cross join lateral (select distinct x from unnest(d.upstream) x) e(up)
    left join task_instance u on u.run_id = d.run_id and u.task_id = e.up
    group by d.id)
update task_instance t set up_total = c.total, up_success = c.success, up_failed = c.failed,
                           up_skipped = c.skipped
from counts c
where t.id = c.id;

-- Apply the outcome changes of one statement's rows (`old_rows` → `new_rows`; no old rows for
-- an insert) to their downstream tasks' counters.
create function drover_count_upstream() returns trigger language plpgsql as $$
begin
    -- The counters' own update below fires this trigger again: it changes no state, so
    -- there is nothing to count (and without this it would recurse).
    if current_setting('drover.counting_upstream', true) = 'on' then
        return null;
    end if;
    perform set_config('drover.counting_upstream', 'on', true);
    if tg_op = 'UPDATE' then
        with changed as (
            select n.run_id, n.downstream,
                   (n.state = 'success')::int - (o.state = 'success')::int as ds,
                   (n.state in ('failed', 'upstream_failed'))::int
                     - (o.state in ('failed', 'upstream_failed'))::int as df,
                   (n.state = 'skipped')::int - (o.state = 'skipped')::int as dk
            from new_rows n join old_rows o on o.id = n.id
            where n.state <> o.state and cardinality(n.downstream) > 0),
        delta as (
            select c.run_id, x.task_id, sum(c.ds)::int as ds, sum(c.df)::int as df, sum(c.dk)::int as dk
            from changed c cross join lateral unnest(c.downstream) x(task_id)
            where c.ds <> 0 or c.df <> 0 or c.dk <> 0
            group by c.run_id, x.task_id
            having sum(c.ds) <> 0 or sum(c.df) <> 0 or sum(c.dk) <> 0),
        target as materialized (
            select t.id, d.ds, d.df, d.dk
            from delta d join task_instance t on t.run_id = d.run_id and t.task_id = d.task_id
            order by t.id
            for update of t)
        update task_instance t set up_success = t.up_success + g.ds, up_failed = t.up_failed + g.df,
                                   up_skipped = t.up_skipped + g.dk
        from target g
        where t.id = g.id;
    else
        with changed as (
            select n.run_id, n.downstream,
                   (n.state = 'success')::int as ds,
                   (n.state in ('failed', 'upstream_failed'))::int as df,
                   (n.state = 'skipped')::int as dk
            from new_rows n
            where n.state in ('success', 'failed', 'upstream_failed', 'skipped')
              and cardinality(n.downstream) > 0),
        delta as (
            select c.run_id, x.task_id, sum(c.ds)::int as ds, sum(c.df)::int as df, sum(c.dk)::int as dk
            from changed c cross join lateral unnest(c.downstream) x(task_id)
            group by c.run_id, x.task_id),
        target as materialized (
            select t.id, d.ds, d.df, d.dk
            from delta d join task_instance t on t.run_id = d.run_id and t.task_id = d.task_id
            order by t.id
            for update of t)
        update task_instance t set up_success = t.up_success + g.ds, up_failed = t.up_failed + g.df,
                                   up_skipped = t.up_skipped + g.dk
        from target g
        where t.id = g.id;
    end if;
    perform set_config('drover.counting_upstream', '', true);
    return null;
end
$$;

create trigger task_instance_count_upstream_update
    after update on task_instance
    referencing old table as old_rows new table as new_rows
    for each statement execute function drover_count_upstream();

create trigger task_instance_count_upstream_insert
    after insert on task_instance
    referencing new table as new_rows
    for each statement execute function drover_count_upstream();

-- "Does the run still have an unfinished task?" is one probe of the run's unfinished rows,
-- not a scan of its finished ones.
create index task_instance_unfinished on task_instance (run_id)
    where state in ('pending', 'queued', 'running', 'up_for_retry', 'awaiting_approval');
