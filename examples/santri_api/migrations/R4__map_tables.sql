-- R4: undo V4.
DROP INDEX IF EXISTS public.idx_santri_pribadi_lokasi;
DROP TABLE IF EXISTS public.pesantren_map;
DROP TABLE IF EXISTS public.santri_map;
