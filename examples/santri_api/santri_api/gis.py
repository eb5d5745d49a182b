"""GIS endpoints (release 1.1.0): choropleth statistics from the materialized views."""

from typing import Literal, Optional

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query

from santri_api import db

router = APIRouter(prefix="/gis", tags=["gis"])

KABUPATEN_SQL = """
SELECT provinsi, kabupaten,
       coalesce(s.jumlah_santri, 0)          AS jumlah_santri,
       coalesce(s.jumlah_putra, 0)           AS jumlah_putra,
       coalesce(s.jumlah_putri, 0)           AS jumlah_putri,
       coalesce(s.jumlah_berskor, 0)         AS jumlah_berskor,
       s.rata_skor                           AS rata_skor,
       coalesce(p.jumlah_pesantren, 0)       AS jumlah_pesantren,
       round(ST_X(s.pusat)::numeric, 5)      AS lon,
       round(ST_Y(s.pusat)::numeric, 5)      AS lat
  FROM mv_santri_stats_kabupaten s
  FULL JOIN mv_pesantren_stats_kabupaten p USING (provinsi, kabupaten)
 WHERE %(provinsi)s::text IS NULL OR provinsi = %(provinsi)s
 ORDER BY provinsi, kabupaten
"""

PROVINSI_SQL = """
SELECT provinsi,
       count(*)                                  AS jumlah_kabupaten,
       coalesce(sum(s.jumlah_santri), 0)         AS jumlah_santri,
       coalesce(sum(s.jumlah_putra), 0)          AS jumlah_putra,
       coalesce(sum(s.jumlah_putri), 0)          AS jumlah_putri,
       coalesce(sum(s.jumlah_berskor), 0)        AS jumlah_berskor,
       round(sum(s.rata_skor * s.jumlah_berskor) / nullif(sum(s.jumlah_berskor), 0), 2) AS rata_skor,
       coalesce(sum(p.jumlah_pesantren), 0)      AS jumlah_pesantren
  FROM mv_santri_stats_kabupaten s
  FULL JOIN mv_pesantren_stats_kabupaten p USING (provinsi, kabupaten)
 WHERE %(provinsi)s::text IS NULL OR provinsi = %(provinsi)s
 GROUP BY provinsi
 ORDER BY provinsi
"""


@router.get("/choropleth/stats")
def choropleth_stats(level: Literal["kabupaten", "provinsi"] = "kabupaten",
                     provinsi: Optional[str] = Query(None, min_length=1, max_length=80),
                     conn=Depends(db.connection)):
    """Per-kabupaten (or per-provinsi) counts and mean score, for a choropleth map."""
    sql = KABUPATEN_SQL if level == "kabupaten" else PROVINSI_SQL
    try:
        return conn.execute(sql, {"provinsi": provinsi}).fetchall()
    except psycopg.errors.UndefinedTable:
        raise HTTPException(503, "statistics are not available: migration V6 (materialized views) not applied")
    except psycopg.errors.ObjectNotInPrerequisiteState:
        raise HTTPException(503, "statistics are not available yet: materialized views not refreshed")
