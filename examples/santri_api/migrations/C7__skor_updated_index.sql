-- C7: verify V7: the index exists and is VALID (a failed CONCURRENTLY build is not).
DO $$
BEGIN
    IF to_regclass('public.idx_santri_skor_updated_at') IS NULL THEN
        RAISE EXCEPTION 'C7: index idx_santri_skor_updated_at is missing';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_index
                   WHERE indexrelid = 'public.idx_santri_skor_updated_at'::regclass AND indisvalid) THEN
        RAISE EXCEPTION 'C7: index idx_santri_skor_updated_at is INVALID (drop it and re-run V7)';
    END IF;
END
$$;
