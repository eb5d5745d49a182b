-- C3: verify V3: tables and their indexes.
DO $$
DECLARE
    rel text;
BEGIN
    FOREACH rel IN ARRAY ARRAY['public.pondok_pesantren', 'public.santri_pribadi', 'public.santri_skor',
                               'public.idx_pondok_pesantren_wilayah', 'public.idx_santri_pribadi_pesantren',
                               'public.idx_santri_pribadi_wilayah_status', 'public.idx_santri_pribadi_nama_trgm',
                               'public.idx_pondok_pesantren_nama_trgm'] LOOP
        IF to_regclass(rel) IS NULL THEN
            RAISE EXCEPTION 'C3: relation % is missing', rel;
        END IF;
    END LOOP;
END
$$;
