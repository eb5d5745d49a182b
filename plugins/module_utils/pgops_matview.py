# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Materialized view catalog, ordering and refresh logic for pgops.deploy.matview_refresh.

Pure helpers (``parse_name``, ``toposort``, ``concurrency_decision``,
``backoff_delay``) are unit tested; ``MatviewCatalog`` / ``Refresher`` talk to a
real server through ``PgSession``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_postgres import quote_ident, sqlstate

LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"

# Every materialized view of the database (system schemas excluded).
MATVIEWS_SQL = """
SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relispopulated AS populated
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'm'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%'
ORDER BY n.nspname, c.relname
"""

# Matview -> matview edges: follow each view's rewrite rule to the relations it
# reads; through plain views (relkind 'v') recurse into their rewrite rule.
# UNION (not UNION ALL) de-duplicates (mv, ref) pairs, so the recursion ends
# even on a (theoretically impossible) cycle.
DEPENDENCIES_SQL = """
WITH RECURSIVE deps(mv, ref) AS (
    SELECT r.ev_class, d.refobjid
    FROM pg_catalog.pg_rewrite r
    JOIN pg_catalog.pg_class c ON c.oid = r.ev_class AND c.relkind = 'm'
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass
         AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
    WHERE d.refobjid <> r.ev_class
  UNION
    SELECT deps.mv, d.refobjid
    FROM deps
    JOIN pg_catalog.pg_class v ON v.oid = deps.ref AND v.relkind = 'v'
    JOIN pg_catalog.pg_rewrite r ON r.ev_class = v.oid
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass
         AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
    WHERE d.refobjid <> v.oid
)
SELECT DISTINCT deps.mv AS mv_oid, deps.ref AS dep_oid
FROM deps
JOIN pg_catalog.pg_class m ON m.oid = deps.ref AND m.relkind = 'm'
WHERE deps.ref <> deps.mv
"""

# Unique-index facts PostgreSQL checks before REFRESH ... CONCURRENTLY
# (matview.c is_usable_unique_index): unique, immediate, valid, btree,
# no predicate, plain columns only (no 0 in indkey).
INDEXES_SQL = """
SELECT i.indrelid AS mv_oid, ic.relname AS index_name, i.indisunique AS is_unique,
       i.indisvalid AS is_valid, i.indisready AS is_ready, i.indimmediate AS is_immediate,
       (i.indpred IS NOT NULL) AS has_predicate,
       (0 = ANY (i.indkey::int2[]) OR i.indexprs IS NOT NULL) AS has_expressions,
       am.amname AS access_method
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_am am ON am.oid = ic.relam
WHERE i.indrelid = ANY (%s)
ORDER BY ic.relname
"""

RELATION_KIND_SQL = """
SELECT c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""

LOCK_HOLDERS_SQL = """
SELECT l.pid, l.mode, a.state, left(a.query, 120) AS query
FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.relation = %s AND l.granted AND l.pid <> pg_backend_pid()
ORDER BY l.pid
"""

KIND_NAMES = {"r": "table", "v": "view", "p": "partitioned table", "f": "foreign table", "i": "index",
              "S": "sequence", "c": "composite type", "t": "TOAST table", "I": "partitioned index"}


class MatviewError(Exception):
    """A user-facing failure with a complete message."""


# ------------------------------------------------------------------ pure logic

def parse_name(name, default_schema="public"):
    """Split ``schema.view`` (either part may be double-quoted) into (schema, view).

    Unquoted parts are folded to lower case like PostgreSQL does.
    """
    parts = []
    buf = []
    quoted = False
    was_quoted = False
    i = 0
    text = name.strip()
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == '"':
                if i + 1 < len(text) and text[i + 1] == '"':
                    buf.append('"')
                    i += 1
                else:
                    quoted = False
            else:
                buf.append(ch)
        elif ch == '"':
            quoted = True
            was_quoted = True
        elif ch == ".":
            parts.append("".join(buf) if was_quoted else "".join(buf).lower())
            buf, was_quoted = [], False
        else:
            buf.append(ch)
        i += 1
    if quoted:
        raise MatviewError("unterminated quote in view name %r" % name)
    parts.append("".join(buf) if was_quoted else "".join(buf).lower())
    if len(parts) == 1:
        parts.insert(0, default_schema)
    if len(parts) != 2 or not all(parts):
        raise MatviewError("invalid view name %r: expected 'view' or 'schema.view'" % name)
    return parts[0], parts[1]


def display_name(schema, name):
    """schema.name, quoted only where PostgreSQL needs it."""
    def q(part):
        if part and part.replace("_", "a").isalnum() and part == part.lower() and not part[0].isdigit():
            return part
        return quote_ident(part)
    return "%s.%s" % (q(schema), q(name))


def toposort(nodes, edges):
    """Order ``nodes`` so each node comes after the nodes it depends on.

    ``edges`` maps node -> iterable of nodes it depends on (edges to nodes outside
    ``nodes`` are ignored). Ties are broken by name, so the order is stable.
    Returns (order, cyclic): nodes left on a cycle are appended by name and
    reported in ``cyclic`` instead of looping forever.
    """
    nodes = sorted(set(nodes))
    node_set = set(nodes)
    deps = dict((n, set(d for d in edges.get(n, ()) if d in node_set and d != n)) for n in nodes)
    dependants = dict((n, set()) for n in nodes)
    for n, ds in deps.items():
        for d in ds:
            dependants[d].add(n)
    remaining = dict((n, len(ds)) for n, ds in deps.items())
    ready = sorted(n for n, c in remaining.items() if c == 0)
    order = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        del remaining[n]
        for m in sorted(dependants[n]):
            if m in remaining:
                remaining[m] -= 1
                if remaining[m] == 0:
                    ready.append(m)
        ready.sort()
    cyclic = sorted(remaining)
    return order + cyclic, cyclic


def dependants_closure(start, edges):
    """All nodes that (transitively) depend on any node of ``start``."""
    reverse = {}
    for n, ds in edges.items():
        for d in ds:
            reverse.setdefault(d, set()).add(n)
    seen = set(start)
    todo = list(start)
    while todo:
        n = todo.pop()
        for m in reverse.get(n, ()):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def concurrency_decision(populated, indexes):
    """Can REFRESH MATERIALIZED VIEW CONCURRENTLY run? -> (ok, index_used, reason).

    ``indexes`` are dicts with is_unique, is_valid, is_ready, is_immediate,
    has_predicate, has_expressions, access_method, index_name. The reason names
    the first obstacle in the order a DBA would check them.
    """
    if not populated:
        return False, None, "view is not populated (created WITH NO DATA): CONCURRENTLY needs populated data"
    unique = [i for i in indexes if i.get("is_unique")]
    if not unique:
        return False, None, "no unique index: CONCURRENTLY needs a unique index on plain columns without WHERE"
    problems = []
    for idx in unique:
        why = []
        if idx.get("has_expressions"):
            why.append("uses expressions")
        if idx.get("has_predicate"):
            why.append("is partial (has a WHERE clause)")
        if not idx.get("is_valid") or not idx.get("is_ready"):
            why.append("is invalid or not ready")
        if not idx.get("is_immediate", True):
            why.append("is deferrable")
        if (idx.get("access_method") or "btree") != "btree":
            why.append("is not a btree index")
        if not why:
            return True, idx.get("index_name"), None
        problems.append("%s %s" % (idx.get("index_name"), " and ".join(why)))
    return False, None, "no usable unique index: " + "; ".join(problems)


def backoff_delay(attempt, base, cap=60.0):
    """Seconds to wait after failed attempt number ``attempt`` (1-based): base * 2^(attempt-1), capped."""
    return min(cap, base * (2 ** (attempt - 1)))


def plan_methods(views, concurrently):
    """Fill method / fallback_reason for each view dict (needs 'concurrent_ok', 'reason').

    Returns the list of views that needed a fallback.
    """
    fallbacks = []
    for v in views:
        if concurrently == "never":
            v["method"], v["fallback_reason"] = "plain", None
        elif v["concurrent_ok"]:
            v["method"], v["fallback_reason"] = "concurrent", None
        else:
            v["method"], v["fallback_reason"] = "plain", v["reason"]
            fallbacks.append(v)
    return fallbacks


# ------------------------------------------------------------------ catalog

class MatviewCatalog(object):
    """Materialized views of one database, their dependencies and indexes."""

    def __init__(self, session):
        self.session = session
        rows = session.query(MATVIEWS_SQL)
        self.by_oid = dict((r["oid"], r) for r in rows)
        self.by_name = dict(((r["schema"], r["name"]), r["oid"]) for r in rows)
        self.edges = {}
        for r in session.query(DEPENDENCIES_SQL):
            if r["mv_oid"] in self.by_oid and r["dep_oid"] in self.by_oid:
                self.edges.setdefault(r["mv_oid"], set()).add(r["dep_oid"])
        self.indexes = {}
        if rows:
            for r in session.query(INDEXES_SQL, (list(self.by_oid),)):
                self.indexes.setdefault(r["mv_oid"], []).append(r)

    def label(self, oid):
        r = self.by_oid[oid]
        return display_name(r["schema"], r["name"])

    def resolve(self, names=None, schema=None, include_dependants=False):
        """OIDs of the targeted views; raises MatviewError naming every unknown view."""
        if names:
            oids, missing = [], []
            for raw in names:
                sch, rel = parse_name(raw)
                oid = self.by_name.get((sch, rel))
                if oid is None:
                    kind = self.session.scalar(RELATION_KIND_SQL, (sch, rel), record=False)
                    if kind:
                        missing.append("%s is a %s, not a materialized view" % (display_name(sch, rel),
                                                                                KIND_NAMES.get(kind, kind)))
                    else:
                        missing.append("%s does not exist" % display_name(sch, rel))
                elif oid not in oids:
                    oids.append(oid)
            if missing:
                known = ", ".join(self.label(o) for o in sorted(self.by_oid, key=self.label)) or "none"
                raise MatviewError("Unknown materialized view(s): %s (materialized views in this database: %s)"
                                   % ("; ".join(missing), known))
            if include_dependants:
                oids = list(dependants_closure(oids, self.edges))
            return oids
        if schema:
            exists = self.session.scalar("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (schema,),
                                         record=False)
            if not exists:
                raise MatviewError("Schema %r does not exist" % schema)
            return [o for o, r in self.by_oid.items() if r["schema"] == schema]
        return list(self.by_oid)

    def plan(self, oids):
        """Ordered list of view dicts (without method) for the given OIDs."""
        label_of = dict((o, self.label(o)) for o in oids)
        edges = dict((label_of[o], [label_of[d] for d in self.edges.get(o, ()) if d in label_of]) for o in oids)
        order, cyclic = toposort(list(label_of.values()), edges)
        oid_of = dict((v, k) for k, v in label_of.items())
        views = []
        for pos, label in enumerate(order, 1):
            oid = oid_of[label]
            row = self.by_oid[oid]
            ok, index, reason = concurrency_decision(row["populated"], self.indexes.get(oid, []))
            views.append(dict(name=label, schema=row["schema"], relname=row["name"], oid=oid, order=pos,
                              populated=bool(row["populated"]), depends_on=sorted(edges[label]),
                              concurrent_ok=ok, unique_index=index, reason=reason))
        return views, cyclic


# ------------------------------------------------------------------ refresh

class Refresher(object):
    """Runs the refreshes of a plan on an autocommit session."""

    def __init__(self, session, sleep=time.sleep, count_rows=True):
        self.session = session
        self.sleep = sleep
        self.count_rows = count_rows

    def _count(self, view):
        if not self.count_rows:
            return None
        return self.session.scalar("SELECT count(*) FROM %s" % quote_ident(view["schema"], view["relname"]))

    def refresh(self, view, lock_timeout, statement_timeout, retries, retry_delay, analyze=False, vacuum=False):
        """Refresh one view (fills duration_ms, rows_*, attempts). Raises MatviewError on failure."""
        ident = quote_ident(view["schema"], view["relname"])
        sql = "REFRESH MATERIALIZED VIEW %s%s" % ("CONCURRENTLY " if view["method"] == "concurrent" else "", ident)
        # set_config(..., false) = session-level SET, with bind parameters.
        self.session.execute("SELECT pg_catalog.set_config('lock_timeout', %s, false)", (str(lock_timeout),))
        self.session.execute("SELECT pg_catalog.set_config('statement_timeout', %s, false)", (str(statement_timeout),))
        attempt = 0
        start = time.time()
        try:
            while True:
                attempt += 1
                view["attempts"] = attempt
                try:
                    # The count waits for the same locks as the refresh: same timeouts, same retries.
                    view["rows_before"] = self._count(view) if view["populated"] else None
                    self.session.execute(sql)
                    break
                except Exception as exc:
                    code = sqlstate(exc)
                    if code == LOCK_NOT_AVAILABLE and attempt <= retries:
                        delay = backoff_delay(attempt, retry_delay)
                        view.setdefault("waits", []).append(round(delay, 3))
                        self.sleep(delay)
                        continue
                    view["duration_ms"] = round((time.time() - start) * 1000.0, 1)
                    raise MatviewError(self._explain(view, exc, code, attempt, lock_timeout, statement_timeout))
        finally:
            self.session.execute("RESET lock_timeout")
            self.session.execute("RESET statement_timeout")
        view["duration_ms"] = round((time.time() - start) * 1000.0, 1)
        view["rows_after"] = self._count(view)
        view["maintenance"] = []
        # A concurrent refresh updates rows in place (dead tuples); a plain one
        # writes a fresh heap without statistics. VACUUM cannot run in a
        # transaction block: the session is autocommit.
        if vacuum and view["method"] == "concurrent":
            stmt = "VACUUM (ANALYZE) %s" % ident if analyze else "VACUUM %s" % ident
            self.session.execute(stmt)
            view["maintenance"].append(stmt)
        elif analyze:
            stmt = "ANALYZE %s" % ident
            self.session.execute(stmt)
            view["maintenance"].append(stmt)
        return view

    def _explain(self, view, exc, code, attempt, lock_timeout, statement_timeout):
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        if code == LOCK_NOT_AVAILABLE:
            holders = []
            try:
                for h in self.session.query(LOCK_HOLDERS_SQL, (view["oid"],), record=False):
                    holders.append("pid %s holds %s (%s: %s)" % (h["pid"], h["mode"], h["state"], h["query"]))
            except Exception:  # diagnostics are best effort
                pass
            return ("Lock timeout refreshing %s: gave up after %d attempt(s) with lock_timeout=%s (%s)%s"
                    % (view["name"], attempt, lock_timeout, detail,
                       "; lock holders: " + "; ".join(holders) if holders else ""))
        if code == QUERY_CANCELED:
            return ("Refreshing %s exceeded statement_timeout=%s (%s)" % (view["name"], statement_timeout, detail))
        return "Refreshing %s failed (SQLSTATE %s): %s" % (view["name"], code, detail)
