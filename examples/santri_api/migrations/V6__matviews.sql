-- V6 (release 1.1.0): per-kabupaten statistics for the choropleth endpoint.
-- Each view has a UNIQUE index so `REFRESH MATERIALIZED VIEW CONCURRENTLY` is legal.
-- pgops:lock_timeout 5s
-- pgops:statement_timeout 15min
CREATE MATERIALIZED VIEW IF NOT EXISTS public.mv_santri_stats_kabupaten AS
SELECT m.provinsi,
       m.kabupaten,
       count(*)                                        AS jumlah_santri,
       count(*) FILTER (WHERE m.jenis_kelamin = 'L')   AS jumlah_putra,
       count(*) FILTER (WHERE m.jenis_kelamin = 'P')   AS jumlah_putri,
       count(m.skor)                                   AS jumlah_berskor,
       round(avg(m.skor), 2)                           AS rata_skor,
       ST_SetSRID(ST_MakePoint(avg(ST_X(m.geom)), avg(ST_Y(m.geom))), 4326) AS pusat
  FROM public.santri_map m
 WHERE m.status = 'aktif'
 GROUP BY m.provinsi, m.kabupaten;

CREATE UNIQUE INDEX IF NOT EXISTS uq_mv_santri_stats_kabupaten
    ON public.mv_santri_stats_kabupaten (provinsi, kabupaten);

CREATE MATERIALIZED VIEW IF NOT EXISTS public.mv_pesantren_stats_kabupaten AS
SELECT pp.provinsi,
       pp.kabupaten,
       count(*)                                              AS jumlah_pesantren,
       count(*) FILTER (WHERE pp.tipe = 'salafiyah')         AS jumlah_salafiyah,
       count(*) FILTER (WHERE pp.tipe = 'khalafiyah')        AS jumlah_khalafiyah,
       count(*) FILTER (WHERE pp.tipe = 'terpadu')           AS jumlah_terpadu,
       coalesce(sum(pm.jumlah_santri_berskor), 0)::bigint    AS jumlah_santri_berskor,
       round(sum(pm.total_skor) / nullif(sum(pm.jumlah_santri_berskor), 0), 2) AS rata_skor
  FROM public.pondok_pesantren pp
  LEFT JOIN public.pesantren_map pm ON pm.pesantren_id = pp.id
 GROUP BY pp.provinsi, pp.kabupaten;

CREATE UNIQUE INDEX IF NOT EXISTS uq_mv_pesantren_stats_kabupaten
    ON public.mv_pesantren_stats_kabupaten (provinsi, kabupaten);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'santri_app') THEN
        GRANT SELECT ON public.mv_santri_stats_kabupaten, public.mv_pesantren_stats_kabupaten TO santri_app;
    END IF;
END
$$;
