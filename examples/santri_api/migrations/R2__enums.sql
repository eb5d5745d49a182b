-- R2: undo V2.
DROP TYPE IF EXISTS public.tipe_pesantren;
DROP TYPE IF EXISTS public.status_santri;
DROP TYPE IF EXISTS public.jenis_kelamin;
