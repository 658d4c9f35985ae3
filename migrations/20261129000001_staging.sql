-- Staged datasets, return receipts, data checks and MAP API usage.
--
-- Task data lives in the `staging` schema, one table per task output per run. User-written
-- SQL (transform steps, sql tasks, checks) runs on connections that log in as `drover_sql`, a
-- role that can use `staging` and the helper functions in `drover_lib` and nothing else: it
-- owns no Drover table and is granted none, so a DAG can never read or change runs, users or
-- the audit log. Creating the role needs CREATEROLE; roles are cluster-wide, so databases of
-- one cluster share it.

create schema if not exists staging;
create schema if not exists drover_lib;

do $$
begin
    create role drover_sql login nosuperuser nocreatedb nocreaterole noinherit;
exception
    when duplicate_object or unique_violation then null;
end
$$;

grant usage, create on schema staging to drover_sql;
grant usage on schema drover_lib to drover_sql;

-- Country names, codes and common spellings → ISO 3166-1 alpha-2. Unknown values → null.
create table drover_lib.country_alias (
    alias text primary key,
    code  char(2) not null
);

insert into drover_lib.country_alias (alias, code) values
 ('us','US'),('usa','US'),('u.s.a.','US'),('u.s.','US'),('united states','US'),('united states of america','US'),('america','US'),
 ('ca','CA'),('can','CA'),('canada','CA'),
 ('mx','MX'),('mex','MX'),('mexico','MX'),('méxico','MX'),
 ('br','BR'),('bra','BR'),('brazil','BR'),('brasil','BR'),
 ('ar','AR'),('arg','AR'),('argentina','AR'),
 ('gb','GB'),('gbr','GB'),('uk','GB'),('u.k.','GB'),('united kingdom','GB'),('great britain','GB'),('england','GB'),('scotland','GB'),('wales','GB'),
 ('ie','IE'),('irl','IE'),('ireland','IE'),
 ('de','DE'),('deu','DE'),('germany','DE'),('deutschland','DE'),
 ('fr','FR'),('fra','FR'),('france','FR'),
 ('es','ES'),('esp','ES'),('spain','ES'),('españa','ES'),('espana','ES'),
 ('pt','PT'),('prt','PT'),('portugal','PT'),
 ('it','IT'),('ita','IT'),('italy','IT'),('italia','IT'),
 ('nl','NL'),('nld','NL'),('netherlands','NL'),('the netherlands','NL'),('holland','NL'),('nederland','NL'),
 ('be','BE'),('bel','BE'),('belgium','BE'),('belgique','BE'),('belgië','BE'),
 ('lu','LU'),('lux','LU'),('luxembourg','LU'),
 ('ch','CH'),('che','CH'),('switzerland','CH'),('schweiz','CH'),('suisse','CH'),
 ('at','AT'),('aut','AT'),('austria','AT'),('österreich','AT'),('osterreich','AT'),
 ('se','SE'),('swe','SE'),('sweden','SE'),('sverige','SE'),
 ('no','NO'),('nor','NO'),('norway','NO'),('norge','NO'),
 ('dk','DK'),('dnk','DK'),('denmark','DK'),('danmark','DK'),
 ('fi','FI'),('fin','FI'),('finland','FI'),('suomi','FI'),
 ('is','IS'),('isl','IS'),('iceland','IS'),
 ('pl','PL'),('pol','PL'),('poland','PL'),('polska','PL'),
 ('cz','CZ'),('cze','CZ'),('czech republic','CZ'),('czechia','CZ'),
 ('hu','HU'),('hun','HU'),('hungary','HU'),
 ('ro','RO'),('rou','RO'),('romania','RO'),
 ('gr','GR'),('grc','GR'),('greece','GR'),
 ('tr','TR'),('tur','TR'),('turkey','TR'),('türkiye','TR'),('turkiye','TR'),
 ('ua','UA'),('ukr','UA'),('ukraine','UA'),
 ('ru','RU'),('rus','RU'),('russia','RU'),('russian federation','RU'),
 ('il','IL'),('isr','IL'),('israel','IL'),
 ('ae','AE'),('are','AE'),('uae','AE'),('united arab emirates','AE'),
 ('sa','SA'),('sau','SA'),('saudi arabia','SA'),
 ('za','ZA'),('zaf','ZA'),('south africa','ZA'),
 ('ng','NG'),('nga','NG'),('nigeria','NG'),
 ('eg','EG'),('egy','EG'),('egypt','EG'),
 ('ke','KE'),('ken','KE'),('kenya','KE'),
 ('in','IN'),('ind','IN'),('india','IN'),
 ('cn','CN'),('chn','CN'),('china','CN'),('prc','CN'),
 ('jp','JP'),('jpn','JP'),('japan','JP'),
 ('kr','KR'),('kor','KR'),('south korea','KR'),('korea','KR'),('republic of korea','KR'),
 ('sg','SG'),('sgp','SG'),('singapore','SG'),
 ('hk','HK'),('hkg','HK'),('hong kong','HK'),
 ('tw','TW'),('twn','TW'),('taiwan','TW'),
 ('au','AU'),('aus','AU'),('australia','AU'),
 ('nz','NZ'),('nzl','NZ'),('new zealand','NZ'),
 ('id','ID'),('idn','ID'),('indonesia','ID'),
 ('my','MY'),('mys','MY'),('malaysia','MY'),
 ('th','TH'),('tha','TH'),('thailand','TH'),
 ('vn','VN'),('vnm','VN'),('vietnam','VN'),('viet nam','VN'),
 ('ph','PH'),('phl','PH'),('philippines','PH'),
 ('cl','CL'),('chl','CL'),('chile','CL'),
 ('co','CO'),('col','CO'),('colombia','CO'),
 ('pe','PE'),('per','PE'),('peru','PE');

-- Trimmed, lower-cased, inner whitespace collapsed.
create function drover_lib.iso_country(value text) returns text
language sql stable parallel safe as $$
    select code::text from drover_lib.country_alias
    where alias = lower(regexp_replace(btrim(value), '\s+', ' ', 'g'))
$$;

-- Phone numbers to E.164: digits only; a leading 00 or + keeps the country code; ten digits
-- are taken as North American (+1). Anything that cannot be a phone number becomes null.
create function drover_lib.e164(value text) returns text
language sql immutable parallel safe as $$
    with d as (
        select btrim(value) as raw, regexp_replace(value, '\D', '', 'g') as digits
    )
    select case
        when d.raw like '+%' and length(d.digits) between 8 and 15 then '+' || d.digits
        when d.digits like '00%' and length(d.digits) between 10 and 17 then '+' || substr(d.digits, 3)
        when length(d.digits) = 10 then '+1' || d.digits
        when length(d.digits) = 11 and d.digits like '1%' then '+' || d.digits
        else null
    end
    from d
$$;

grant select on drover_lib.country_alias to drover_sql;
grant execute on function drover_lib.iso_country(text), drover_lib.e164(text) to drover_sql;

-- One row per staged table: a task's output, or a return's receipt.
create table dataset (
    run_id       uuid not null references dag_run (id) on delete cascade,
    task_id      text not null,
    kind         text not null check (kind in ('output', 'receipt')),
    environment  text not null,
    table_name   text not null,
    row_count    bigint not null,
    columns      jsonb not null,
    created_at   timestamptz not null default now(),
    expires_at   timestamptz not null,
    dropped_at   timestamptz,
    primary key (run_id, task_id, kind)
);
create index dataset_live_expiry on dataset (expires_at) where dropped_at is null;

-- What each try moved.
alter table task_try
    add column rows_in       bigint,
    add column rows_out      bigint,
    add column rows_rejected bigint,
    add column api_calls     bigint,
    add column bytes_moved   bigint;

-- Data checks: the value, the thresholds it was held against, the verdict.
create table check_result (
    run_id       uuid not null references dag_run (id) on delete cascade,
    task_id      text not null,
    try_number   integer not null,
    dag_id       text not null,
    environment  text not null,
    value        double precision,
    min_value    double precision,
    max_value    double precision,
    passed       boolean not null,
    severity     text not null check (severity in ('warn', 'fail')),
    checked_at   timestamptz not null default now(),
    primary key (run_id, task_id, try_number)
);
create index check_result_history on check_result (dag_id, environment, task_id, checked_at desc);

-- MAP API calls per environment and day (the MAP's day: it resets at midnight US Central).
create table map_api_usage (
    environment  text not null,
    day          date not null,
    calls        bigint not null default 0,
    primary key (environment, day)
);
