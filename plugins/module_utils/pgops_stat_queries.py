# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Catalog / statistics queries of pgops.deploy.pg_stat_report, one function per section.

Each ``collect_<section>(session, opts)`` returns the raw data of the section
(JSON-serialisable). Version differences are resolved here
(``statements_columns``), thresholds are applied in pgops_stat_eval.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import decimal

SECTIONS = ["statements", "activity", "locks", "connections", "sizes", "indexes", "cache", "vacuum",
            "wraparound", "replication"]

USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'"


def statements_columns(server_version_num):
    """pg_stat_statements column names for this server, keyed by our stable names.

    PG 13 split total_time into total_exec_time + total_plan_time; PG 17 renamed
    blk_read_time/blk_write_time to shared_blk_read_time/shared_blk_write_time.
    Missing columns map to None (selected as NULL).
    """
    v = int(server_version_num)
    cols = dict(total_ms="total_time", mean_ms="mean_time", max_ms="max_time", stddev_ms="stddev_time",
                plan_total_ms=None, plan_mean_ms=None, blk_read_ms="blk_read_time", blk_write_ms="blk_write_time")
    if v >= 130000:
        cols.update(total_ms="total_exec_time", mean_ms="mean_exec_time", max_ms="max_exec_time",
                    stddev_ms="stddev_exec_time", plan_total_ms="total_plan_time", plan_mean_ms="mean_plan_time")
    if v >= 170000:
        cols.update(blk_read_ms="shared_blk_read_time", blk_write_ms="shared_blk_write_time")
    return cols


def statements_select(server_version_num, order_by, limit_placeholder="%s"):
    """SELECT over pg_stat_statements of the current database with normalised column names."""
    cols = statements_columns(server_version_num)
    fields = ["s.queryid", "r.rolname AS role", "s.calls", "s.rows", "s.shared_blks_hit", "s.shared_blks_read",
              "left(s.query, 2000) AS query"]
    for alias, col in sorted(cols.items()):
        fields.append("%s AS %s" % ("s.%s" % col if col else "NULL::float8", alias))
    order_col = {"total": "total_ms", "mean": "mean_ms", "calls": "calls"}[order_by]
    return ("SELECT %s FROM {schema}.pg_stat_statements s "
            "LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.userid "
            "WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) "
            "ORDER BY %s DESC NULLS LAST LIMIT %s" % (", ".join(fields), order_col, limit_placeholder))


def jsonable(value):
    """Convert driver values (Decimal, datetime, timedelta, memoryview) to JSON types."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds(), 3)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, dict):
        return dict((k, jsonable(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, memoryview):
        return value.tobytes().decode("utf-8", "replace")
    return value


def rows(session, sql, params=None):
    return [jsonable(r) for r in session.query(sql, params)]


def extension_schema(session, name):
    return session.scalar("SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n "
                          "ON n.oid = e.extnamespace WHERE e.extname = %s", (name,))


# ------------------------------------------------------------------ sections

def collect_statements(session, opts):
    schema = extension_schema(session, "pg_stat_statements")
    data = dict(available=bool(schema), columns=statements_columns(session.server_version_num))
    if not schema:
        preload = session.scalar("SELECT current_setting('shared_preload_libraries')")
        data["preloaded"] = "pg_stat_statements" in (preload or "")
        return data
    quoted = '"%s"' % schema.replace('"', '""')
    data["preloaded"] = True
    for key in ("total", "mean", "calls"):
        data["top_by_" + key] = rows(session, statements_select(session.server_version_num, key).format(schema=quoted),
                                     (opts["top"],))
    return data


def collect_activity(session, opts):
    sql = """
SELECT a.pid, a.usename AS "user", a.datname AS database, a.application_name, a.client_addr::text AS client_addr,
       a.state, a.wait_event_type, a.wait_event,
       extract(epoch FROM now() - a.query_start)::float8 AS query_seconds,
       extract(epoch FROM now() - a.xact_start)::float8 AS xact_seconds,
       extract(epoch FROM now() - a.state_change)::float8 AS state_seconds,
       left(a.query, 1000) AS query
FROM pg_catalog.pg_stat_activity a
WHERE a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
  AND a.state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')
ORDER BY a.xact_start NULLS LAST
"""
    return dict(sessions=rows(session, sql))


def collect_locks(session, opts):
    sql = """
SELECT a.pid, a.usename AS "user", a.datname AS database, a.state, a.wait_event_type, a.wait_event,
       pg_catalog.pg_blocking_pids(a.pid) AS blocked_by,
       extract(epoch FROM now() - coalesce(a.state_change, a.query_start))::float8 AS waiting_seconds,
       left(a.query, 500) AS query
FROM pg_catalog.pg_stat_activity a
WHERE cardinality(pg_catalog.pg_blocking_pids(a.pid)) > 0
"""
    blocked = rows(session, sql)
    blocker_pids = sorted(set(p for b in blocked for p in b["blocked_by"]) - set(b["pid"] for b in blocked))
    blockers = []
    if blocker_pids:
        blockers = rows(session, """
SELECT a.pid, a.usename AS "user", a.state, extract(epoch FROM now() - a.xact_start)::float8 AS xact_seconds,
       left(a.query, 500) AS query
FROM pg_catalog.pg_stat_activity a WHERE a.pid = ANY (%s) ORDER BY a.pid""", (blocker_pids,))
    return dict(blocked=blocked, root_blockers=blockers)


def collect_connections(session, opts):
    by_state = rows(session, """
SELECT coalesce(state, 'unknown') AS state, count(*)::int AS count
FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 2 DESC""")
    settings = rows(session, """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved""")[0]
    total = sum(r["count"] for r in by_state)
    usable = max(1, settings["max_connections"] - settings["superuser_reserved"])
    return dict(by_state=by_state, total=total, usable=usable, percent_used=round(100.0 * total / usable, 1),
                **settings)


def collect_sizes(session, opts):
    # Total size once per relation; the split into heap / indexes only for the top N.
    tables = rows(session, """
WITH total AS (
    SELECT c.oid, pg_catalog.pg_total_relation_size(c.oid) AS total_bytes
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'm', 'p') AND """ + USER_SCHEMAS + """
    ORDER BY 2 DESC, 1 LIMIT %s
)
SELECT n.nspname AS schema, c.relname AS name,
       CASE c.relkind WHEN 'm' THEN 'materialized view' WHEN 'p' THEN 'partitioned table' ELSE 'table' END AS kind,
       t.total_bytes, pg_catalog.pg_relation_size(c.oid) AS heap_bytes,
       pg_catalog.pg_indexes_size(c.oid) AS index_bytes, c.reltuples::bigint AS estimated_rows
FROM total t JOIN pg_catalog.pg_class c ON c.oid = t.oid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
ORDER BY t.total_bytes DESC, 1, 2""", (opts["top"],))
    indexes = rows(session, """
SELECT n.nspname AS schema, c.relname AS name, t.relname AS "table", pg_catalog.pg_relation_size(c.oid) AS bytes
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
WHERE c.relkind = 'i' AND """ + USER_SCHEMAS + """
ORDER BY 4 DESC, 1, 2 LIMIT %s""", (opts["top"],))
    db = rows(session, "SELECT current_database() AS name, pg_catalog.pg_database_size(current_database()) AS bytes")[0]
    return dict(database=db, tables=tables, indexes=indexes)


INDEX_FACTS_SQL = """
SELECT n.nspname AS schema, ic.relname AS name, t.relname AS "table", coalesce(s.idx_scan, 0) AS idx_scan,
       pg_catalog.pg_relation_size(ic.oid) AS bytes, i.indisunique AS is_unique, i.indisprimary AS is_primary,
       i.indisvalid AS is_valid, i.indisready AS is_ready,
       EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = ic.oid) AS backs_constraint,
       pg_catalog.pg_get_indexdef(ic.oid) AS definition
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = ic.relnamespace
LEFT JOIN pg_catalog.pg_stat_all_indexes s ON s.indexrelid = ic.oid
WHERE """ + USER_SCHEMAS + """
ORDER BY 1, 2
"""


def collect_indexes(session, opts):
    facts = rows(session, INDEX_FACTS_SQL)
    unused = [f for f in facts if f["idx_scan"] == 0 and not f["is_unique"] and not f["is_primary"]
              and not f["backs_constraint"] and f["is_valid"]]
    duplicates = rows(session, """
SELECT n.nspname AS schema, t.relname AS "table",
       array_agg(ic.relname ORDER BY ic.relname) AS indexes
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
WHERE """ + USER_SCHEMAS + """
GROUP BY n.nspname, t.relname, i.indrelid, i.indkey::text, i.indclass::text, ic.relam,
         coalesce(pg_catalog.pg_get_expr(i.indpred, i.indrelid), ''),
         coalesce(pg_catalog.pg_get_expr(i.indexprs, i.indrelid), '')
HAVING count(*) > 1
ORDER BY 1, 2""")
    invalid = [f for f in facts if not f["is_valid"] or not f["is_ready"]]
    stats_reset = session.scalar("SELECT stats_reset FROM pg_catalog.pg_stat_database WHERE datname = current_database()")
    return dict(unused=unused, duplicates=duplicates, invalid=invalid, count=len(facts),
                stats_reset=jsonable(stats_reset))


def collect_cache(session, opts):
    return rows(session, """
SELECT (SELECT coalesce(sum(heap_blks_hit), 0) FROM pg_catalog.pg_statio_user_tables)::bigint AS heap_hit,
       (SELECT coalesce(sum(heap_blks_read), 0) FROM pg_catalog.pg_statio_user_tables)::bigint AS heap_read,
       (SELECT coalesce(sum(idx_blks_hit), 0) FROM pg_catalog.pg_statio_user_indexes)::bigint AS index_hit,
       (SELECT coalesce(sum(idx_blks_read), 0) FROM pg_catalog.pg_statio_user_indexes)::bigint AS index_read""")[0]


def collect_vacuum(session, opts):
    tables = rows(session, """
SELECT schemaname AS schema, relname AS name, n_live_tup AS live_tuples, n_dead_tup AS dead_tuples,
       round(100.0 * n_dead_tup / nullif(n_live_tup + n_dead_tup, 0), 2)::float8 AS dead_percent,
       last_vacuum, last_autovacuum, last_analyze, last_autoanalyze,
       extract(epoch FROM now() - greatest(last_vacuum, last_autovacuum)) / 86400.0 AS days_since_vacuum,
       extract(epoch FROM now() - greatest(last_analyze, last_autoanalyze)) / 86400.0 AS days_since_analyze
FROM pg_catalog.pg_stat_user_tables
ORDER BY n_dead_tup DESC, 1, 2 LIMIT %s""", (opts["top"],))
    for t in tables:
        for k in ("days_since_vacuum", "days_since_analyze"):
            if t[k] is not None:
                t[k] = round(t[k], 2)
    return dict(tables=tables)


def collect_wraparound(session, opts):
    databases = rows(session, """
SELECT datname AS database, age(datfrozenxid)::bigint AS xid_age,
       round(100.0 * age(datfrozenxid) / 2147483648, 2)::float8 AS percent_towards_wraparound
FROM pg_catalog.pg_database WHERE datallowconn ORDER BY 2 DESC""")
    # The limit is the smaller of the sequence's max_value and the owning column's type.
    sequences = rows(session, """
SELECT s.schemaname AS schema, s.sequencename AS name, s.data_type::text AS data_type, s.last_value,
       s.increment_by, s.cycle,
       least(s.max_value, CASE col.atttypid WHEN 'int2'::regtype THEN 32767 WHEN 'int4'::regtype THEN 2147483647
                                     ELSE 9223372036854775807 END) AS max_value,
       col.attrelid::regclass::text AS owned_by_table, col.attname AS owned_by_column
FROM pg_catalog.pg_sequences s
JOIN pg_catalog.pg_class c ON c.relname = s.sequencename
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname
LEFT JOIN pg_catalog.pg_depend d ON d.objid = c.oid AND d.classid = 'pg_catalog.pg_class'::regclass
     AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')
LEFT JOIN pg_catalog.pg_attribute col ON col.attrelid = d.refobjid AND col.attnum = d.refobjsubid
ORDER BY 1, 2""")
    for s in sequences:
        if s["last_value"] is None or not s["max_value"] or s["increment_by"] < 0:
            s["percent_used"] = 0.0 if s["last_value"] is None else None
        else:
            s["percent_used"] = round(100.0 * s["last_value"] / s["max_value"], 4)
    return dict(databases=databases, sequences=sequences)


def collect_replication(session, opts):
    in_recovery = session.scalar("SELECT pg_catalog.pg_is_in_recovery()")
    data = dict(in_recovery=bool(in_recovery), replicas=[], slots=[])
    if in_recovery:
        data["replay_delay_seconds"] = jsonable(session.scalar(
            "SELECT extract(epoch FROM now() - pg_catalog.pg_last_xact_replay_timestamp())::float8"))
        return data
    data["replicas"] = rows(session, """
SELECT application_name, client_addr::text AS client_addr, state, sync_state,
       extract(epoch FROM replay_lag)::float8 AS replay_lag_seconds,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), replay_lsn)::bigint AS replay_lag_bytes
FROM pg_catalog.pg_stat_replication ORDER BY 1""")
    data["slots"] = rows(session, """
SELECT slot_name, slot_type, database, active,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), coalesce(restart_lsn, confirmed_flush_lsn))::bigint
           AS retained_bytes
FROM pg_catalog.pg_replication_slots ORDER BY 1""")
    return data


COLLECTORS = dict((name, globals()["collect_" + name]) for name in SECTIONS)


# ------------------------------------------------------------------ snapshots

def collect_snapshot(session, opts):
    """Cumulative counters compare mode diffs: statements, index scans, relation sizes."""
    snap = dict(server_version_num=session.server_version_num,
                database=session.scalar("SELECT current_database()"), statements={}, indexes={}, tables={})
    schema = extension_schema(session, "pg_stat_statements")
    if schema:
        cols = statements_columns(session.server_version_num)
        quoted = '"%s"' % schema.replace('"', '""')
        sql = ("SELECT s.queryid::text AS queryid, sum(s.calls)::bigint AS calls, sum(s.%s)::float8 AS total_ms, "
               "min(left(s.query, 500)) AS query FROM %s.pg_stat_statements s "
               "WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) "
               "AND s.queryid IS NOT NULL GROUP BY s.queryid" % (cols["total_ms"], quoted))
        for r in rows(session, sql):
            r["mean_ms"] = round(r["total_ms"] / r["calls"], 4) if r["calls"] else 0.0
            snap["statements"][r.pop("queryid")] = r
    snap["statements_available"] = bool(schema)
    for f in rows(session, INDEX_FACTS_SQL):
        snap["indexes"]["%s.%s" % (f["schema"], f["name"])] = dict(
            idx_scan=f["idx_scan"], bytes=f["bytes"], table=f["table"],
            exempt=bool(f["is_unique"] or f["is_primary"] or f["backs_constraint"]))
    for t in rows(session, """
SELECT n.nspname AS schema, c.relname AS name, pg_catalog.pg_total_relation_size(c.oid) AS bytes
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p') AND """ + USER_SCHEMAS):
        snap["tables"]["%s.%s" % (t["schema"], t["name"])] = t["bytes"]
    return snap
