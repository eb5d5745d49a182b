-- pgops:no-transaction
-- pgops:lock_timeout 10s
-- V7 (release 1.1.0): index for "recently changed scores" on a table that already holds
-- data in production, so it is built CONCURRENTLY: outside a transaction, one statement.
-- A failed build leaves an INVALID index that IF NOT EXISTS would skip: C7 checks it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_santri_skor_updated_at
    ON public.santri_skor (updated_at DESC);
