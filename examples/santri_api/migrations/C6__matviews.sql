-- C6: verify V6: both views exist, are populated and have a valid UNIQUE index.
DO $$
DECLARE
    mv text;
BEGIN
    FOREACH mv IN ARRAY ARRAY['mv_santri_stats_kabupaten', 'mv_pesantren_stats_kabupaten'] LOOP
        IF NOT EXISTS (SELECT FROM pg_matviews WHERE schemaname = 'public' AND matviewname = mv) THEN
            RAISE EXCEPTION 'C6: materialized view % is missing', mv;
        END IF;
        IF NOT EXISTS (SELECT FROM pg_matviews WHERE schemaname = 'public' AND matviewname = mv
                       AND ispopulated) THEN
            RAISE EXCEPTION 'C6: materialized view % is not populated', mv;
        END IF;
        IF NOT EXISTS (SELECT FROM pg_index i
                       WHERE i.indrelid = format('public.%I', mv)::regclass
                         AND i.indisunique AND i.indisvalid) THEN
            RAISE EXCEPTION 'C6: materialized view % has no valid UNIQUE index (REFRESH CONCURRENTLY would fail)', mv;
        END IF;
    END LOOP;
END
$$;
