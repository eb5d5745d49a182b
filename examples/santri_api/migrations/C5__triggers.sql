-- C5: verify V5: both triggers exist on santri_skor and are enabled.
DO $$
DECLARE
    trg text;
BEGIN
    FOREACH trg IN ARRAY ARRAY['trg_santri_skor_touch', 'trg_santri_skor_sync'] LOOP
        IF NOT EXISTS (SELECT FROM pg_trigger
                       WHERE tgrelid = to_regclass('public.santri_skor') AND tgname = trg
                         AND tgenabled <> 'D') THEN
            RAISE EXCEPTION 'C5: trigger % on santri_skor is missing or disabled', trg;
        END IF;
    END LOOP;
END
$$;
