-- V5: keep santri_map / pesantren_map in sync when a score changes.
-- SECURITY DEFINER: the app role may write santri_skor but not the map tables.
-- pgops:lock_timeout 5s
CREATE OR REPLACE FUNCTION public.fn_santri_skor_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION public.fn_santri_skor_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_pesantren bigint;
    v_delta_n integer := 0;
    v_delta_total numeric := 0;
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE santri_map SET skor = NULL, updated_at = now()
         WHERE santri_id = OLD.santri_id
        RETURNING pesantren_id INTO v_pesantren;
        UPDATE pesantren_map
           SET jumlah_santri_berskor = jumlah_santri_berskor - 1,
               total_skor = total_skor - OLD.skor,
               updated_at = now()
         WHERE pesantren_id = v_pesantren;
        RETURN OLD;
    END IF;

    IF TG_OP = 'INSERT' THEN
        v_delta_n := 1;
        v_delta_total := NEW.skor;
    ELSE
        v_delta_total := NEW.skor - OLD.skor;
    END IF;

    INSERT INTO santri_map AS m (santri_id, pesantren_id, jenis_kelamin, status, kabupaten, provinsi,
                                 geom, skor, updated_at)
    SELECT p.id, p.pesantren_id, p.jenis_kelamin, p.status, p.kabupaten, p.provinsi, p.lokasi, NEW.skor, now()
      FROM santri_pribadi p
     WHERE p.id = NEW.santri_id
    ON CONFLICT (santri_id) DO UPDATE SET skor = EXCLUDED.skor, updated_at = EXCLUDED.updated_at
    RETURNING m.pesantren_id INTO v_pesantren;

    INSERT INTO pesantren_map AS pm (pesantren_id, nama, kabupaten, provinsi, geom,
                                     jumlah_santri_berskor, total_skor, updated_at)
    SELECT pp.id, pp.nama, pp.kabupaten, pp.provinsi, pp.lokasi, v_delta_n, v_delta_total, now()
      FROM pondok_pesantren pp
     WHERE pp.id = v_pesantren
    ON CONFLICT (pesantren_id) DO UPDATE
       SET jumlah_santri_berskor = pm.jumlah_santri_berskor + EXCLUDED.jumlah_santri_berskor,
           total_skor = pm.total_skor + EXCLUDED.total_skor,
           updated_at = EXCLUDED.updated_at;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS trg_santri_skor_touch ON public.santri_skor;
CREATE TRIGGER trg_santri_skor_touch
    BEFORE UPDATE ON public.santri_skor
    FOR EACH ROW EXECUTE FUNCTION public.fn_santri_skor_touch();

DROP TRIGGER IF EXISTS trg_santri_skor_sync ON public.santri_skor;
CREATE TRIGGER trg_santri_skor_sync
    AFTER INSERT OR DELETE OR UPDATE OF skor ON public.santri_skor
    FOR EACH ROW EXECUTE FUNCTION public.fn_santri_skor_sync();
