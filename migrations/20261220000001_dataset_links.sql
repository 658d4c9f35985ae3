-- Data-aware runs (`triggers: [{ dataset: { dag, task } }]`): which DAG's datasets start which
-- DAGs in each environment, kept when DAG versions are synced or promoted into it, so the
-- transaction recording a task's success finds the DAGs it starts with one index probe.

-- What a version produces and consumes (its tasks, those that stage a dataset, its dataset
-- triggers and where each is written): read from its file once. Null: not read yet (versions
-- from before this migration are read at the next sync).
alter table dag_version add column dataset_uses jsonb;

-- `consumer_dag` (running `consumer_version` in `environment`) starts a run when
-- `producer_dag`'s `producer_task` stages its dataset there. Only triggers that hold: a
-- trigger naming an unknown DAG or task, or closing a cycle, is a problem instead.
create table dataset_link (
    environment      text not null references environment (name),
    producer_dag     text not null,
    producer_task    text not null,
    consumer_dag     text not null,
    consumer_version bigint not null references dag_version (id),
    -- The consumer's `deadline: { within }`, counted from when its run is made.
    deadline_secs    bigint,
    primary key (environment, producer_dag, producer_task, consumer_dag)
);
create index dataset_link_by_consumer on dataset_link (environment, consumer_dag);

-- The dataset triggers refused in an environment, located in their files: shown on the
-- consuming DAG's page; its other triggers and its schedule keep working.
create table dataset_link_problem (
    environment text not null references environment (name),
    dag_id      text not null,
    path        text not null,
    line        integer not null,
    col         integer not null,
    message     text not null,
    primary key (environment, dag_id, line, col)
);

-- The runs a producing run started, for its page ("started 2 runs: …").
create index event_by_producing_run on event ((payload->>'run_id')) where kind = 'dataset';
