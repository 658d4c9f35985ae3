-- People who use Drover: users with argon2 password hashes and a role, optionally a
-- different role per environment; browser sessions; API tokens; login attempts (for
-- throttling). Secrets are stored only as hashes.

create table app_user (
    name                 text primary key check (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    password_hash        text not null,
    role                 text not null check (role in ('viewer', 'operator', 'admin')),
    created_at           timestamptz not null default now(),
    password_changed_at  timestamptz not null default now(),
    disabled_at          timestamptz
);

-- A role that replaces the user's own role in one environment (e.g. operator in dev and qa,
-- viewer in prod).
create table user_environment_role (
    user_name    text not null references app_user (name) on delete cascade,
    environment  text not null,
    role         text not null check (role in ('viewer', 'operator', 'admin')),
    primary key (user_name, environment)
);

-- A browser session: the cookie holds a random token; only its SHA-256 is stored.
create table web_session (
    token_hash    bytea primary key,
    user_name     text not null references app_user (name) on delete cascade,
    csrf_token    text not null,
    created_at    timestamptz not null default now(),
    expires_at    timestamptz not null
);
create index web_session_expiry on web_session (expires_at);

-- A token for the JSON API (`Authorization: Bearer …`); only its SHA-256 is stored.
create table api_token (
    id            bigserial primary key,
    user_name     text not null references app_user (name) on delete cascade,
    label         text not null,
    token_hash    bytea not null unique,
    created_at    timestamptz not null default now(),
    revoked_at    timestamptz
);

create table login_attempt (
    id         bigserial primary key,
    user_name  text not null,
    client     text not null,
    at         timestamptz not null default now(),
    succeeded  boolean not null
);
create index login_attempt_recent on login_attempt (user_name, at desc);

