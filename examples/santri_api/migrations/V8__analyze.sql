-- V8 (release 1.1.0): fresh planner statistics after the schema changes.
ANALYZE public.pondok_pesantren;
ANALYZE public.santri_pribadi;
ANALYZE public.santri_skor;
ANALYZE public.santri_map;
ANALYZE public.pesantren_map;
ANALYZE public.mv_santri_stats_kabupaten;
ANALYZE public.mv_pesantren_stats_kabupaten;
