-- R5: undo V5.
DROP TRIGGER IF EXISTS trg_santri_skor_sync ON public.santri_skor;
DROP TRIGGER IF EXISTS trg_santri_skor_touch ON public.santri_skor;
DROP FUNCTION IF EXISTS public.fn_santri_skor_sync();
DROP FUNCTION IF EXISTS public.fn_santri_skor_touch();
