-- C1: verify V1 (raises when an extension is missing).
DO $$
DECLARE
    ext text;
BEGIN
    FOREACH ext IN ARRAY ARRAY['postgis', 'pgcrypto', 'uuid-ossp', 'pg_trgm'] LOOP
        IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = ext) THEN
            RAISE EXCEPTION 'C1: extension % is missing', ext;
        END IF;
    END LOOP;
END
$$;
