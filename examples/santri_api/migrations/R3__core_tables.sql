-- R3: undo V3 (indexes and grants go with the tables).
DROP TABLE IF EXISTS public.santri_skor;
DROP TABLE IF EXISTS public.santri_pribadi;
DROP TABLE IF EXISTS public.pondok_pesantren;
