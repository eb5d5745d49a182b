-- R6: undo V6 (the unique indexes go with the views).
DROP MATERIALIZED VIEW IF EXISTS public.mv_pesantren_stats_kabupaten;
DROP MATERIALIZED VIEW IF EXISTS public.mv_santri_stats_kabupaten;
