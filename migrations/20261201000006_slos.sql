-- Data SLOs: a failed check whose SLO was burning its error budget fast, once per check run;
-- the `slo_burn` notification is found here.
create table slo_burn (
    run_id            uuid not null references dag_run (id) on delete cascade,
    task_id           text not null,
    dag_id            text not null,
    environment       text not null,
    burn_1h           double precision,
    burn_6h           double precision,
    budget_remaining  double precision not null,
    at                timestamptz not null default now(),
    primary key (run_id, task_id)
);
create index slo_burn_recent on slo_burn (at);
