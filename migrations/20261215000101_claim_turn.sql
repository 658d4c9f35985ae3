-- Claims take turns on this table (an exclusive lock in the claim's transaction) so
-- each claim sees the ones before it and no environment runs more than its `concurrency`.
-- It replaces a transaction-level advisory lock: any SQL in the database, user SQL included,
-- could take that key and stall every worker. User SQL has no privilege on Drover's tables.
create table claim_turn (
    id boolean primary key default true,
    constraint claim_turn_one_row check (id)
);
insert into claim_turn default values;
revoke all on claim_turn from public;
