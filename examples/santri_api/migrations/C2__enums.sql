-- C2: verify V2.
DO $$
DECLARE
    typ text;
BEGIN
    FOREACH typ IN ARRAY ARRAY['jenis_kelamin', 'status_santri', 'tipe_pesantren'] LOOP
        IF NOT EXISTS (SELECT FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                       WHERE n.nspname = 'public' AND t.typname = typ AND t.typtype = 'e') THEN
            RAISE EXCEPTION 'C2: enum type % is missing', typ;
        END IF;
    END LOOP;
END
$$;
