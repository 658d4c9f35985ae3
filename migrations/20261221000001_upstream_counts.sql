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

-- Apply the outcome changes of one statement's rows to their downstream tasks' counters: each
-- row counts +1 into the outcome of its new state and -1 out of the outcome of its old one
-- (an insert has no old rows), summed per downstream task; a row whose outcome did not change
-- cancels out. The transition tables are not joined (a join of two tuplestores is planned
-- without statistics, as a nested loop: 10,000 queued rows made it 10^8 comparisons), and a
-- statement that moves no row into or out of an outcome (a claim, a lease renewal, queuing)
-- is done after one scan of each.
create function drover_count_upstream() returns trigger language plpgsql as $$
begin
    -- The counters' own update below fires this trigger again: it changes no state, so
    -- there is nothing to count (and without this it would recurse).
    if current_setting('drover.counting_upstream', true) = 'on' then
        return null;
    end if;
    if tg_op = 'UPDATE' then
        if not exists (select 1 from new_rows
                       where state in ('success', 'failed', 'upstream_failed', 'skipped')
                         and cardinality(downstream) > 0)
           and not exists (select 1 from old_rows
                           where state in ('success', 'failed', 'upstream_failed', 'skipped')
                             and cardinality(downstream) > 0) then
            return null;
        end if;
        perform set_config('drover.counting_upstream', 'on', true);
        with moved as (
            select run_id, downstream, state, 1 as sign from new_rows
            where state in ('success', 'failed', 'upstream_failed', 'skipped') and cardinality(downstream) > 0
            union all
            select run_id, downstream, state, -1 from old_rows
            where state in ('success', 'failed', 'upstream_failed', 'skipped') and cardinality(downstream) > 0),
        delta as (
            select m.run_id, x.task_id,
                   sum(m.sign) filter (where m.state = 'success')::int as ds,
                   sum(m.sign) filter (where m.state in ('failed', 'upstream_failed'))::int as df,
                   sum(m.sign) filter (where m.state = 'skipped')::int as dk
            from moved m cross join lateral unnest(m.downstream) x(task_id)
            group by m.run_id, x.task_id),
        target as materialized (
            select t.id, coalesce(d.ds, 0) as ds, coalesce(d.df, 0) as df, coalesce(d.dk, 0) as dk
            from delta d join task_instance t on t.run_id = d.run_id and t.task_id = d.task_id
            where coalesce(d.ds, 0) <> 0 or coalesce(d.df, 0) <> 0 or coalesce(d.dk, 0) <> 0
            order by t.id
            for update of t)
        update task_instance t set up_success = t.up_success + g.ds, up_failed = t.up_failed + g.df,
                                   up_skipped = t.up_skipped + g.dk
        from target g
        where t.id = g.id;
    else
        if not exists (select 1 from new_rows
                       where state in ('success', 'failed', 'upstream_failed', 'skipped')
                         and cardinality(downstream) > 0) then
            return null;
        end if;
        perform set_config('drover.counting_upstream', 'on', true);
        with delta as (
            select n.run_id, x.task_id,
                   count(*) filter (where n.state = 'success')::int as ds,
                   count(*) filter (where n.state in ('failed', 'upstream_failed'))::int as df,
                   count(*) filter (where n.state = 'skipped')::int as dk
            from new_rows n cross join lateral unnest(n.downstream) x(task_id)
            where n.state in ('success', 'failed', 'upstream_failed', 'skipped')
            group by n.run_id, x.task_id),
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
