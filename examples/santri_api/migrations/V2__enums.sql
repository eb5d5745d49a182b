-- V2: enum types, created only when missing (CREATE TYPE has no IF NOT EXISTS).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE n.nspname = 'public' AND t.typname = 'jenis_kelamin') THEN
        CREATE TYPE public.jenis_kelamin AS ENUM ('L', 'P');
    END IF;
    IF NOT EXISTS (SELECT FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE n.nspname = 'public' AND t.typname = 'status_santri') THEN
        CREATE TYPE public.status_santri AS ENUM ('aktif', 'alumni', 'keluar');
    END IF;
    IF NOT EXISTS (SELECT FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE n.nspname = 'public' AND t.typname = 'tipe_pesantren') THEN
        CREATE TYPE public.tipe_pesantren AS ENUM ('salafiyah', 'khalafiyah', 'terpadu');
    END IF;
END
$$;
