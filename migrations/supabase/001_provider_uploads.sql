-- breaker-service: the Supabase table that tracks successful provider uploads.
-- Apply once, in the Supabase SQL editor (paste and run) or with psql:
--   psql "$SUPABASE_DB_URL" -f migrations/supabase/001_provider_uploads.sql
-- The table name must match SUPABASE_TABLE (default provider_uploads).

create table if not exists public.provider_uploads (
    id               uuid primary key,            -- the local upload id: idempotency key
    provider         text        not null,
    provider_file_id text        not null,
    filename         text        not null,
    sha256           char(64)    not null,
    bytes            bigint      not null check (bytes >= 0),
    purpose          text        not null,
    attempts         integer     not null check (attempts >= 1),
    uploaded_at      timestamptz not null,
    instance_id      text        not null,
    tracked_at       timestamptz not null default now(),
    constraint provider_uploads_provider_file_unique unique (provider, provider_file_id)
);

create index if not exists provider_uploads_sha256_idx on public.provider_uploads (sha256);
create index if not exists provider_uploads_uploaded_at_idx on public.provider_uploads (uploaded_at desc);

-- Row-level security: nobody but the service role writes. breaker-service uses the
-- service-role key (SUPABASE_SERVICE_KEY), which bypasses RLS; with RLS enabled and no
-- policy for anon/authenticated, the public keys can neither read nor write the table.
alter table public.provider_uploads enable row level security;

-- Optional: let signed-in dashboard users read (not write) the tracking table.
-- create policy "provider_uploads read for authenticated"
--   on public.provider_uploads for select to authenticated using (true);
