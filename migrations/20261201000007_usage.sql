-- Show-back and staged-data limits: each staged table's size when it was written.
alter table dataset add column bytes bigint not null default 0;
create index dataset_environment_live on dataset (environment) where dropped_at is null;
create index dataset_created on dataset (created_at);
