-- pgops:no-transaction
-- R7: undo V7 without blocking writers.
DROP INDEX CONCURRENTLY IF EXISTS public.idx_santri_skor_updated_at;
