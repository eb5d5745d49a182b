-- V4: denormalised map tables read by the GIS layer, kept in sync by V5's triggers.
-- It also adds a GIST index on santri_pribadi.lokasi, a table V3 created: a plain
-- CREATE INDEX is intended here (the table is still empty when V3+V4 ship together).
-- pgops:allow non-concurrent-index
-- pgops:lock_timeout 5s
CREATE TABLE IF NOT EXISTS public.santri_map (
    santri_id      bigint PRIMARY KEY REFERENCES public.santri_pribadi (id) ON DELETE CASCADE,
    pesantren_id   bigint NOT NULL REFERENCES public.pondok_pesantren (id),
    jenis_kelamin  public.jenis_kelamin NOT NULL,
    status         public.status_santri NOT NULL,
    kabupaten      text NOT NULL,
    provinsi       text NOT NULL,
    geom           geometry(Point, 4326) NOT NULL,
    skor           numeric(5, 2),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.pesantren_map (
    pesantren_id           bigint PRIMARY KEY REFERENCES public.pondok_pesantren (id) ON DELETE CASCADE,
    nama                   text NOT NULL,
    kabupaten              text NOT NULL,
    provinsi               text NOT NULL,
    geom                   geometry(Point, 4326) NOT NULL,
    jumlah_santri_berskor  integer NOT NULL DEFAULT 0,
    total_skor             numeric(14, 2) NOT NULL DEFAULT 0,
    rata_skor              numeric(5, 2) GENERATED ALWAYS AS (
        CASE WHEN jumlah_santri_berskor > 0 THEN round(total_skor / jumlah_santri_berskor, 2) END
    ) STORED,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_santri_map_geom ON public.santri_map USING gist (geom);
CREATE INDEX IF NOT EXISTS idx_santri_map_wilayah ON public.santri_map (provinsi, kabupaten);
CREATE INDEX IF NOT EXISTS idx_santri_map_pesantren ON public.santri_map (pesantren_id);
CREATE INDEX IF NOT EXISTS idx_pesantren_map_geom ON public.pesantren_map USING gist (geom);
CREATE INDEX IF NOT EXISTS idx_pesantren_map_wilayah ON public.pesantren_map (provinsi, kabupaten);
-- Index on the V3 table (see header).
CREATE INDEX IF NOT EXISTS idx_santri_pribadi_lokasi ON public.santri_pribadi USING gist (lokasi);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'santri_app') THEN
        GRANT SELECT ON public.santri_map, public.pesantren_map TO santri_app;
    END IF;
END
$$;
