"""Bulk test-data generator for the santri schema.

    python -m santri_api.datagen --dsn DSN --rows N [--pesantren M] [--seed S]
                                 [--target-size 1GB] [--batch-size 100000]

Rows are generated server-side (INSERT ... SELECT over generate_series): nothing crosses
the wire but the statement, which beats client-side COPY on a small machine. Every value
is a function of (row id, seed) through hashint8extended(), so the same seed on an empty
database always yields the same data, whatever the plan. Runs are additive: new santri
get the ids after the current maximum.

Per batch the score trigger (V5) is bypassed and santri_map is filled in one set-based
statement: as superuser with session_replication_role=replica (also skips FK checks;
the data is consistent by construction), else by disabling the trigger inside the
batch's transaction (table owner). pesantren_map is rebuilt at the end, then the
materialized views are refreshed (when V6 is applied) and the tables analyzed.
"""

import argparse
import json
import os
import re
import sys
import time

import psycopg

from santri_api import wilayah

SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024 ** 2, "MB": 1024 ** 2,
              "MIB": 1024 ** 2, "G": 1024 ** 3, "GB": 1024 ** 3, "GIB": 1024 ** 3, "T": 1024 ** 4,
              "TB": 1024 ** 4, "TIB": 1024 ** 4}

# Measured: santri + score + map rows with all their indexes take ~700 bytes each.
BYTES_PER_SANTRI = 700
MASK = 9223372036854775807  # hashint8extended() is signed: keep it non-negative

PESANTREN_SQL = """
INSERT INTO pondok_pesantren (id, uuid, nama, tipe, kabupaten, provinsi, lokasi, didirikan)
SELECT g,
       md5('pesantren:' || %(seed)s || ':' || g)::uuid,
       'PP ' || (%(nama)s::text[])[1 + (h1 %% cardinality(%(nama)s::text[]))] || ' '
             || regexp_replace(k.kabupaten, '^(Kab\\.|Kota) ', '') || ' ' || g,
       (ARRAY['salafiyah', 'khalafiyah', 'terpadu'])[1 + h2 %% 3]::tipe_pesantren,
       k.kabupaten, k.provinsi,
       ST_SetSRID(ST_MakePoint(k.lon + ((h4 %% 10000) / 10000.0 - 0.5) * 2 * %(jitter)s,
                               k.lat + (((h4 / 10000) %% 10000) / 10000.0 - 0.5) * 2 * %(jitter)s), 4326),
       (1850 + h5 %% 170)::smallint
  FROM (SELECT g,
               hashint8extended(g, %(seed)s * 64 + 1) & {mask} AS h1,
               hashint8extended(g, %(seed)s * 64 + 2) & {mask} AS h2,
               hashint8extended(g, %(seed)s * 64 + 3) & {mask} AS h3,
               hashint8extended(g, %(seed)s * 64 + 4) & {mask} AS h4,
               hashint8extended(g, %(seed)s * 64 + 5) & {mask} AS h5
          FROM generate_series(1::bigint, %(count)s::bigint) AS g) AS s
  JOIN pg_temp.dg_kab k ON k.i = s.h3 %% %(nkab)s
ON CONFLICT DO NOTHING
""".format(mask=MASK)

SANTRI_SQL = """
INSERT INTO santri_pribadi (id, uuid, nis, nama, jenis_kelamin, tanggal_lahir, status, pesantren_id,
                            kabupaten, provinsi, lokasi)
SELECT g,
       md5('santri:' || %(seed)s || ':' || g)::uuid,
       'S' || lpad(g::text, 10, '0'),
       CASE WHEN h1 %% 2 = 0
            THEN (%(depan_l)s::text[])[1 + h2 %% cardinality(%(depan_l)s::text[])]
            ELSE (%(depan_p)s::text[])[1 + h2 %% cardinality(%(depan_p)s::text[])] END
       || CASE WHEN h3 %% 3 = 0
               THEN ' ' || (%(tengah)s::text[])[1 + (h3 / 3) %% cardinality(%(tengah)s::text[])]
               ELSE '' END
       || ' ' || (%(belakang)s::text[])[1 + h4 %% cardinality(%(belakang)s::text[])],
       (CASE WHEN h1 %% 2 = 0 THEN 'L' ELSE 'P' END)::jenis_kelamin,
       DATE '2000-01-01' + (h5 %% 6200)::integer,
       (CASE WHEN h6 %% 100 < 85 THEN 'aktif' WHEN h6 %% 100 < 95 THEN 'alumni' ELSE 'keluar' END)::status_santri,
       1 + h7 %% %(npes)s,
       k.kabupaten, k.provinsi,
       ST_SetSRID(ST_MakePoint(k.lon + ((h8 %% 10000) / 10000.0 - 0.5) * 2 * %(jitter)s,
                               k.lat + (((h8 / 10000) %% 10000) / 10000.0 - 0.5) * 2 * %(jitter)s), 4326)
  FROM (SELECT g,
               hashint8extended(g, %(seed)s * 64 + 11) & {mask} AS h1,
               hashint8extended(g, %(seed)s * 64 + 12) & {mask} AS h2,
               hashint8extended(g, %(seed)s * 64 + 13) & {mask} AS h3,
               hashint8extended(g, %(seed)s * 64 + 14) & {mask} AS h4,
               hashint8extended(g, %(seed)s * 64 + 15) & {mask} AS h5,
               hashint8extended(g, %(seed)s * 64 + 16) & {mask} AS h6,
               hashint8extended(g, %(seed)s * 64 + 17) & {mask} AS h7,
               hashint8extended(g, %(seed)s * 64 + 18) & {mask} AS h8,
               hashint8extended(g, %(seed)s * 64 + 19) & {mask} AS h9
          FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g) AS s
  JOIN pg_temp.dg_kabw k ON k.i = s.h9 %% %(nkabw)s
""".format(mask=MASK)

SKOR_SQL = """
INSERT INTO santri_skor (santri_id, skor, kategori)
SELECT g,
       round(40 + ((hashint8extended(g, %(seed)s * 64 + 21) & {mask}) %% 6001) / 100.0, 2),
       (%(kategori)s::text[])[1 + (hashint8extended(g, %(seed)s * 64 + 22) & {mask})
                                  %% cardinality(%(kategori)s::text[])]
  FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
 WHERE (hashint8extended(g, %(seed)s * 64 + 23) & {mask}) %% 10 < 9
""".format(mask=MASK)

MAP_SQL = """
INSERT INTO santri_map (santri_id, pesantren_id, jenis_kelamin, status, kabupaten, provinsi, geom, skor)
SELECT p.id, p.pesantren_id, p.jenis_kelamin, p.status, p.kabupaten, p.provinsi, p.lokasi, s.skor
  FROM santri_pribadi p
  LEFT JOIN santri_skor s ON s.santri_id = p.id
 WHERE p.id BETWEEN %(lo)s AND %(hi)s
ON CONFLICT (santri_id) DO UPDATE SET skor = EXCLUDED.skor, updated_at = now()
"""

PESANTREN_MAP_SQL = """
INSERT INTO pesantren_map AS pm (pesantren_id, nama, kabupaten, provinsi, geom, jumlah_santri_berskor, total_skor)
SELECT pp.id, pp.nama, pp.kabupaten, pp.provinsi, pp.lokasi, coalesce(a.n, 0), coalesce(a.total, 0)
  FROM pondok_pesantren pp
  LEFT JOIN (SELECT pesantren_id, count(skor) AS n, sum(skor) AS total
               FROM santri_map GROUP BY pesantren_id) a ON a.pesantren_id = pp.id
ON CONFLICT (pesantren_id) DO UPDATE
   SET jumlah_santri_berskor = EXCLUDED.jumlah_santri_berskor,
       total_skor = EXCLUDED.total_skor,
       updated_at = now()
 WHERE (pm.jumlah_santri_berskor, pm.total_skor) IS DISTINCT FROM
       (EXCLUDED.jumlah_santri_berskor, EXCLUDED.total_skor)
"""

TABLES = ["pondok_pesantren", "santri_pribadi", "santri_skor", "santri_map", "pesantren_map"]
MATVIEWS = ["mv_santri_stats_kabupaten", "mv_pesantren_stats_kabupaten"]


def parse_size(text):
    """'1GB', '512MiB', '1.5G', '2000000' -> bytes (binary units)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    if not match or match.group(2).upper() not in SIZE_UNITS:
        raise argparse.ArgumentTypeError("invalid size %r (expected e.g. 1GB, 500MB, 2GiB, 1048576)" % text)
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])


def human(nbytes):
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if nbytes < 1024 or unit == "TB":
            return "%.1f %s" % (nbytes, unit) if unit != "B" else "%d B" % nbytes
        nbytes /= 1024.0
    return str(nbytes)


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0, got %s" % text)
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m santri_api.datagen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"),
                        help="libpq DSN or URL (default: $DATABASE_URL)")
    parser.add_argument("--rows", type=positive_int,
                        help="santri rows to add (with --target-size: the most to add)")
    parser.add_argument("--pesantren", type=positive_int,
                        help="make sure pesantren ids 1..M exist (default: one per 250 santri, at least 10)")
    parser.add_argument("--seed", type=int, default=42, help="data seed (default 42)")
    parser.add_argument("--target-size", type=parse_size,
                        help="keep adding batches until pg_database_size reaches this (e.g. 1GB)")
    parser.add_argument("--batch-size", type=positive_int, default=100000, help="santri per transaction")
    parser.add_argument("--no-refresh", action="store_true", help="skip matview refresh and ANALYZE")
    return parser


def log(msg):
    print("datagen: " + msg, flush=True)


class Generator(object):
    def __init__(self, conn, seed, jitter=wilayah.JITTER_DEG):
        self.conn = conn
        self.seed = seed
        self.jitter = jitter
        self.superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
        self._make_reference_tables()

    def _make_reference_tables(self):
        prov, kab, lon, lat, weight = zip(*wilayah.KABUPATEN)
        cur = self.conn.cursor()
        cur.execute("DROP TABLE IF EXISTS pg_temp.dg_kab, pg_temp.dg_kabw")
        cur.execute("""CREATE TEMP TABLE dg_kab AS
                       SELECT (ord - 1)::bigint AS i, provinsi, kabupaten, lon, lat, weight
                         FROM unnest(%s::text[], %s::text[], %s::float8[], %s::float8[], %s::int[])
                              WITH ORDINALITY AS t(provinsi, kabupaten, lon, lat, weight, ord)""",
                    (list(prov), list(kab), list(lon), list(lat), list(weight)))
        # One row per unit of weight: a uniform pick over it is a weighted pick of kabupaten.
        cur.execute("""CREATE TEMP TABLE dg_kabw AS
                       SELECT (row_number() OVER (ORDER BY k.i, w) - 1)::bigint AS i,
                              k.provinsi, k.kabupaten, k.lon, k.lat
                         FROM pg_temp.dg_kab k, generate_series(1, k.weight) AS w""")
        cur.execute("CREATE UNIQUE INDEX ON pg_temp.dg_kabw (i)")
        cur.execute("CREATE UNIQUE INDEX ON pg_temp.dg_kab (i)")
        self.nkab = len(kab)
        self.nkabw = sum(weight)

    def scalar(self, sql, params=None):
        return self.conn.execute(sql, params).fetchone()[0]

    def db_size(self):
        return self.scalar("SELECT pg_database_size(current_database())")

    def ensure_pesantren(self, count):
        with self.conn.transaction():
            cur = self.conn.execute(PESANTREN_SQL, dict(seed=self.seed, nama=wilayah.NAMA_PESANTREN,
                                                        count=count, jitter=self.jitter, nkab=self.nkab))
            self._sync_identity("pondok_pesantren")
        return cur.rowcount

    def _sync_identity(self, table):
        self.conn.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), greatest(max(id), 1)) FROM " + table,
                          ("public." + table,))

    def _bypass_trigger(self):
        if self.superuser:
            self.conn.execute("SET LOCAL session_replication_role = replica")
        else:
            self.conn.execute("ALTER TABLE santri_skor DISABLE TRIGGER trg_santri_skor_sync")

    def _restore_trigger(self):
        if not self.superuser:
            self.conn.execute("ALTER TABLE santri_skor ENABLE TRIGGER trg_santri_skor_sync")

    def add_santri(self, lo, hi, npes):
        """One transaction: santri_pribadi, santri_skor and santri_map for ids lo..hi."""
        params = dict(seed=self.seed, lo=lo, hi=hi, npes=npes, jitter=self.jitter, nkabw=self.nkabw,
                      depan_l=wilayah.NAMA_DEPAN_L, depan_p=wilayah.NAMA_DEPAN_P, tengah=wilayah.NAMA_TENGAH,
                      belakang=wilayah.NAMA_BELAKANG, kategori=wilayah.KATEGORI_SKOR)
        with self.conn.transaction():
            self._bypass_trigger()
            added = self.conn.execute(SANTRI_SQL, params).rowcount
            self.conn.execute(SKOR_SQL, params)
            self.conn.execute(MAP_SQL, params)
            self._restore_trigger()
            self._sync_identity("santri_pribadi")
        return added

    def finish(self, refresh=True):
        with self.conn.transaction():
            # Serialise with the app's score trigger while the aggregates are rebuilt.
            self.conn.execute("LOCK TABLE santri_skor IN SHARE MODE")
            self.conn.execute(PESANTREN_MAP_SQL)
        refreshed = []
        if refresh:
            present = {r[0] for r in self.conn.execute(
                "SELECT matviewname FROM pg_matviews WHERE schemaname = 'public' AND matviewname = ANY(%s)",
                (MATVIEWS,))}
            for mv in MATVIEWS:
                if mv in present:
                    t0 = time.monotonic()
                    self.conn.execute("REFRESH MATERIALIZED VIEW public.%s" % mv)
                    log("refreshed %s in %.1fs" % (mv, time.monotonic() - t0))
                    refreshed.append(mv)
            t0 = time.monotonic()
            for rel in TABLES + refreshed:
                self.conn.execute("ANALYZE public.%s" % rel)
            log("analyzed %d relations in %.1fs" % (len(TABLES) + len(refreshed), time.monotonic() - t0))
        return refreshed


def run(args):
    if not args.dsn:
        raise SystemExit("datagen: no database: pass --dsn or set DATABASE_URL")
    if not args.rows and not args.target_size:
        raise SystemExit("datagen: nothing to do: pass --rows N and/or --target-size SIZE")
    started = time.monotonic()
    with psycopg.connect(args.dsn, autocommit=True, application_name="santri_datagen") as conn:
        missing = [t for t in TABLES if conn.execute("SELECT to_regclass(%s)", ("public." + t,)).fetchone()[0] is None]
        if missing:
            raise SystemExit("datagen: schema not migrated (missing %s): apply migrations V1..V5 first"
                             % ", ".join(missing))
        gen = Generator(conn, args.seed)
        max_santri = gen.scalar("SELECT coalesce(max(id), 0) FROM santri_pribadi")
        existing_pes = gen.scalar("SELECT coalesce(max(id), 0) FROM pondok_pesantren")
        # One pesantren per ~250 santri; with only --target-size, ~700 bytes per santri.
        planned = args.rows or args.target_size // BYTES_PER_SANTRI
        npes = args.pesantren or max(existing_pes, 10, planned // 250)
        size0 = gen.db_size()
        log("start: %d santri, %d pesantren, database %s; seed %d; mode %s"
            % (max_santri, existing_pes, human(size0), args.seed,
               "session_replication_role=replica" if gen.superuser else "trigger disabled per batch"))
        t0 = time.monotonic()
        new_pes = gen.ensure_pesantren(npes)
        log("pesantren: +%d (ids 1..%d) in %.1fs" % (new_pes, npes, time.monotonic() - t0))

        added, lo, batch_no, size = 0, max_santri + 1, 0, gen.db_size()
        load_started = time.monotonic()
        while True:
            if args.rows and added >= args.rows:
                break
            if args.target_size and size >= args.target_size:
                break
            count = args.batch_size if not args.rows else min(args.batch_size, args.rows - added)
            batch_no += 1
            t0 = time.monotonic()
            got = gen.add_santri(lo, lo + count - 1, npes)
            elapsed = time.monotonic() - t0
            added += got
            lo += count
            size = gen.db_size()
            target = (" / target %s" % human(args.target_size)) if args.target_size else ""
            total = (" / %d" % args.rows) if args.rows else ""
            log("batch %d: santri %d..%d (+%d) in %.1fs (%.0f rows/s); added %d%s; database %s%s"
                % (batch_no, lo - count, lo - 1, got, elapsed, got / elapsed if elapsed else 0, added, total,
                   human(size), target))
        load_seconds = time.monotonic() - load_started
        refreshed = gen.finish(refresh=not args.no_refresh)
        final_size = gen.db_size()
        totals = {t: gen.scalar("SELECT count(*) FROM public.%s" % t) for t in TABLES}
        mv_rows = {mv: gen.scalar("SELECT count(*) FROM public.%s" % mv) for mv in refreshed}
    result = {
        "added_santri": added,
        "pesantren": npes,
        "seed": args.seed,
        "load_seconds": round(load_seconds, 2),
        "total_seconds": round(time.monotonic() - started, 2),
        "rows_per_second": round(added / load_seconds) if load_seconds else None,
        "database_size": final_size,
        "database_size_pretty": human(final_size),
        "rows": totals,
        "matview_rows": mv_rows,
    }
    log("done: +%d santri in %.1fs (%s rows/s), total %.1fs; pg_database_size = %d (%s)"
        % (added, load_seconds, result["rows_per_second"], result["total_seconds"], final_size, human(final_size)))
    print("RESULT " + json.dumps(result, sort_keys=True), flush=True)
    return result


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except psycopg.OperationalError as exc:
        print("datagen: cannot use database: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
