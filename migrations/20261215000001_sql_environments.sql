-- One staging schema and one SQL role per environment: `staging_<env>` (the environment's
-- staged datasets), `receipts_<env>` (return receipts and values-before snapshots, written
-- only by Drover) and the role `drover_sql_<env>` its user SQL runs as. Drover provisions
-- them when it first meets an environment; this table serializes that within a database
-- and records when it was done. No SQL role is granted anything on it.
create table sql_environment (
    name           text primary key,
    provisioned_at timestamptz
);

-- The shared role of the old layout keeps nothing here: its grants go. Its staged tables
-- move to their environment's schemas as each environment is provisioned.
do $$
begin
    if exists (select 1 from pg_roles where rolname = 'drover_sql') then
        revoke all on schema staging from drover_sql;
        revoke all on schema drover_lib from drover_sql;
        revoke all on drover_lib.country_alias from drover_sql;
        revoke all on function drover_lib.iso_country(text), drover_lib.e164(text) from drover_sql;
    end if;
end
$$;
