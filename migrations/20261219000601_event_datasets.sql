-- A run's events as a table its SQL reads (`{{ events }}`), registered so retention drops it.
alter table dataset drop constraint if exists dataset_kind_check;
alter table dataset add constraint dataset_kind_check check (kind in ('output', 'receipt', 'plan', 'events'));
