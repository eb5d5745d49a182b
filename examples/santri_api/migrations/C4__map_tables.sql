-- C4: verify V4: map tables, geometry type/SRID and the GIST indexes.
DO $$
DECLARE
    rel text;
BEGIN
    FOREACH rel IN ARRAY ARRAY['public.santri_map', 'public.pesantren_map', 'public.idx_santri_map_geom',
                               'public.idx_santri_map_wilayah', 'public.idx_santri_map_pesantren',
                               'public.idx_pesantren_map_geom', 'public.idx_pesantren_map_wilayah',
                               'public.idx_santri_pribadi_lokasi'] LOOP
        IF to_regclass(rel) IS NULL THEN
            RAISE EXCEPTION 'C4: relation % is missing', rel;
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT FROM geometry_columns
                   WHERE f_table_schema = 'public' AND f_table_name = 'santri_map'
                     AND f_geometry_column = 'geom' AND srid = 4326 AND type = 'POINT') THEN
        RAISE EXCEPTION 'C4: santri_map.geom is not geometry(Point, 4326)';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                   JOIN pg_am am ON am.oid = c.relam
                   WHERE i.indexrelid = 'public.idx_santri_map_geom'::regclass AND am.amname = 'gist') THEN
        RAISE EXCEPTION 'C4: idx_santri_map_geom is not a GIST index';
    END IF;
END
$$;
