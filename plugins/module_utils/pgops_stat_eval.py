# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thresholds, findings and snapshot comparison of pgops.deploy.pg_stat_report (pure logic)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

SEVERITIES = ["info", "warning", "critical"]
STATUS_ORDER = {"ok": 0, "info": 0, "warning": 1, "critical": 2}
MB = 1024.0 * 1024.0

# name -> (warning, critical, direction, unit, origin). direction "high": value >= limit is bad,
# "low": value < limit is bad. None disables a level. Documented in docs/modules.md.
THRESHOLDS = {
    "statement_mean_ms": (20, 1000, "high", "ms", "PgHero slow_query_ms=20; critical at 1 s"),
    "long_running_query_seconds": (60, 300, "high", "s", "PgHero long_running_query_sec=60; check_postgres query_time"),
    "idle_in_transaction_seconds": (60, 600, "high", "s", "check_postgres txn_idle"),
    "lock_wait_seconds": (5, 60, "high", "s", "blocked sessions (PgHero shows all); 5 s / 1 min"),
    "connections_percent": (90, 95, "high", "%", "check_postgres backends (90% / 95% of max_connections)"),
    "cache_hit_percent": (99, 95, "low", "%", "PgHero cache_hit_rate_threshold=99"),
    "unused_index_mb": (1, None, "high", "MB", "unused indexes below 1 MB are info only"),
    "dead_tuple_percent": (20, 50, "high", "%", "autovacuum_vacuum_scale_factor=0.2; check_postgres bloat practice"),
    "analyze_age_days": (7, 30, "high", "days", "stale planner statistics on tables above stale_stats_min_rows"),
    "xid_age": (1300000000, 1400000000, "high", "xids", "check_postgres txn_wraparound (1.3 / 1.4 billion)"),
    "sequence_percent": (85, 95, "high", "%", "check_postgres sequence (85% / 95%); PgHero sequence_danger 0.9"),
    "replication_lag_seconds": (60, 300, "high", "s", "replay lag of a streaming replica"),
    "replication_lag_mb": (64, 1024, "high", "MB", "WAL not yet replayed by a replica"),
    "inactive_slot_retained_mb": (0, 1024, "high", "MB", "check_postgres replication_slots; any inactive slot warns"),
    "size_growth_percent": (50, 200, "high", "%", "compare mode: growth of a relation since the snapshot"),
}
# Scalar settings that filter noise (not severities).
SETTINGS = {
    "statement_min_calls": (100, "PgHero slow_query_calls=100"),
    "cache_min_blocks": (1000, "ignore hit ratios computed from fewer blocks"),
    "vacuum_min_dead_tuples": (1000, "ignore dead-tuple ratios of tiny tables"),
    "stale_stats_min_rows": (10000, "analyze_age_days applies to tables with at least this many rows"),
    "size_growth_min_mb": (1, "compare mode: ignore relations smaller than this"),
}


class ThresholdError(Exception):
    pass


def merge_thresholds(overrides):
    """Defaults overlaid with user overrides; raises ThresholdError on unknown keys / bad values.

    A threshold override is a dict with ``warning`` and/or ``critical`` (null disables a level)
    or a bare number (the warning level); a setting override is a number.
    """
    merged = dict((k, dict(warning=v[0], critical=v[1], direction=v[2], unit=v[3])) for k, v in THRESHOLDS.items())
    for k, v in SETTINGS.items():
        merged[k] = v[0]
    for key, value in (overrides or {}).items():
        if key in SETTINGS:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ThresholdError("thresholds.%s must be a number, got %r" % (key, value))
            merged[key] = value
        elif key in THRESHOLDS:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = dict(warning=value)
            if not isinstance(value, dict) or not set(value) <= {"warning", "critical"}:
                raise ThresholdError("thresholds.%s must be a number or a dict with warning/critical, got %r"
                                     % (key, value))
            for level, limit in value.items():
                if limit is not None and (not isinstance(limit, (int, float)) or isinstance(limit, bool)):
                    raise ThresholdError("thresholds.%s.%s must be a number or null, got %r" % (key, level, limit))
                merged[key][level] = limit
        else:
            raise ThresholdError("unknown threshold %r (known: %s)" % (key, ", ".join(sorted(list(THRESHOLDS) + list(SETTINGS)))))
    return merged


def evaluate(value, threshold):
    """Severity ('critical', 'warning') of a value against a merged threshold, or None."""
    if value is None:
        return None
    high = threshold.get("direction", "high") == "high"
    for level in ("critical", "warning"):
        limit = threshold.get(level)
        if limit is None:
            continue
        if (high and value >= limit) or (not high and value < limit):
            return level
    return None


def worst_status(findings):
    worst = "ok"
    for f in findings:
        sev = f["severity"] if f["severity"] in ("warning", "critical") else "ok"
        if STATUS_ORDER[sev] > STATUS_ORDER[worst]:
            worst = sev
    return worst


def finding(section, severity, message, obj=None, value=None, threshold=None):
    return dict(section=section, severity=severity, message=message, object=obj, value=value, threshold=threshold)


def _limit(th, severity):
    return th.get(severity) if severity in ("warning", "critical") else None


def _short(query, n=80):
    q = " ".join((query or "").split())
    return q if len(q) <= n else q[:n - 3] + "..."


def lock_trees(blocked):
    """Map each root blocker pid -> sorted pids it blocks directly or transitively.

    ``blocked``: dicts with pid and blocked_by (list of pids). A root is a blocker
    that is not itself waiting; a wait cycle (deadlock about to be resolved) is
    rooted at its lowest pid so nothing loops.
    """
    waits = dict((b["pid"], list(b["blocked_by"])) for b in blocked)
    trees = {}
    for pid in sorted(waits):
        seen = set()
        frontier = [pid]
        roots = set()
        while frontier:
            cur = frontier.pop()
            if cur in seen:
                continue
            seen.add(cur)
            parents = waits.get(cur)
            if not parents:
                if cur != pid:
                    roots.add(cur)
                continue
            frontier.extend(parents)
        if not roots:  # only a cycle above us
            roots.add(min(seen))
        for root in roots:
            if root != pid:
                trees.setdefault(root, set()).add(pid)
    return dict((k, sorted(v)) for k, v in trees.items())


# ------------------------------------------------------------------ per-section findings

def findings_statements(data, th, database=None):
    out = []
    if not data.get("available"):
        hint = ("the library is preloaded, run CREATE EXTENSION pg_stat_statements"
                if data.get("preloaded") else
                "add pg_stat_statements to shared_preload_libraries, restart, then CREATE EXTENSION pg_stat_statements")
        out.append(finding("statements", "info", "pg_stat_statements is not installed in database %s: query statistics "
                                                 "are not available (%s)" % (database or "?", hint), "pg_stat_statements"))
        return out
    seen = set()
    for row in (data.get("top_by_mean") or []) + (data.get("top_by_total") or []):
        if row["queryid"] in seen or (row["calls"] or 0) < th["statement_min_calls"]:
            continue
        seen.add(row["queryid"])
        sev = evaluate(row["mean_ms"], th["statement_mean_ms"])
        if sev:
            out.append(finding("statements", sev, "Query %s averages %.1f ms over %d calls (%s limit %s ms): %s" % (
                row["queryid"], row["mean_ms"], row["calls"], sev, _limit(th["statement_mean_ms"], sev),
                _short(row["query"])), "queryid:%s" % row["queryid"], row["mean_ms"], _limit(th["statement_mean_ms"], sev)))
    return out


def findings_activity(data, th):
    out = []
    for s in data.get("sessions", []):
        if s["state"] == "active":
            sev = evaluate(s["query_seconds"], th["long_running_query_seconds"])
            if sev:
                out.append(finding("activity", sev, "pid %s (%s) has been running one query for %.1f s: %s" % (
                    s["pid"], s["user"], s["query_seconds"], _short(s["query"])), "pid:%s" % s["pid"],
                    s["query_seconds"], _limit(th["long_running_query_seconds"], sev)))
        elif s["state"] and s["state"].startswith("idle in transaction"):
            sev = evaluate(s["state_seconds"], th["idle_in_transaction_seconds"])
            if sev:
                out.append(finding("activity", sev, "pid %s (%s) has been %s for %.1f s (transaction open %.1f s); last query: %s"
                                   % (s["pid"], s["user"], s["state"], s["state_seconds"], s["xact_seconds"] or 0,
                                      _short(s["query"])), "pid:%s" % s["pid"], s["state_seconds"],
                                   _limit(th["idle_in_transaction_seconds"], sev)))
    return out


def findings_locks(data, th):
    out = []
    blocked = dict((b["pid"], b) for b in data.get("blocked", []))
    roots = dict((r["pid"], r) for r in data.get("root_blockers", []))
    trees = lock_trees(data.get("blocked", []))
    data["chains"] = [dict(root=k, blocks=v) for k, v in sorted(trees.items())]
    for root, victims in sorted(trees.items()):
        longest = max(blocked[v]["waiting_seconds"] or 0 for v in victims)
        sev = evaluate(longest, th["lock_wait_seconds"])
        if not sev:
            continue
        info = roots.get(root) or blocked.get(root) or {}
        out.append(finding("locks", sev, "pid %s (%s, %s) blocks %d session(s) (pids %s); longest wait %.1f s; "
                                         "blocker's query: %s" % (
                                             root, info.get("user"), info.get("state"), len(victims),
                                             ", ".join(str(v) for v in victims), longest, _short(info.get("query"))),
                           "pid:%s" % root, longest, _limit(th["lock_wait_seconds"], sev)))
    return out


def findings_connections(data, th):
    sev = evaluate(data["percent_used"], th["connections_percent"])
    if not sev:
        return []
    return [finding("connections", sev, "%d of %d usable connections in use (%.1f%%, max_connections=%d)" % (
        data["total"], data["usable"], data["percent_used"], data["max_connections"]), "max_connections",
        data["percent_used"], _limit(th["connections_percent"], sev))]


def cache_ratios(data):
    out = {}
    for kind in ("heap", "index"):
        hit, read = data.get(kind + "_hit") or 0, data.get(kind + "_read") or 0
        out[kind] = dict(blocks=hit + read, percent=round(100.0 * hit / (hit + read), 3) if hit + read else None)
    return out


def findings_cache(data, th):
    out = []
    data["ratios"] = cache_ratios(data)
    for kind, r in sorted(data["ratios"].items()):
        if r["percent"] is None or r["blocks"] < th["cache_min_blocks"]:
            continue
        sev = evaluate(r["percent"], th["cache_hit_percent"])
        if sev:
            out.append(finding("cache", sev, "%s cache hit ratio is %.2f%% (%s below %s%%, %d blocks)" % (
                kind.capitalize(), r["percent"], sev, _limit(th["cache_hit_percent"], sev), r["blocks"]),
                kind + "_cache", r["percent"], _limit(th["cache_hit_percent"], sev)))
    return out


def findings_indexes(data, th):
    out = []
    for i in data.get("unused", []):
        mb = i["bytes"] / MB
        sev = evaluate(mb, th["unused_index_mb"]) or "info"
        out.append(finding("indexes", sev, "Index %s.%s on %s has never been scanned since statistics were reset "
                                           "(%.1f MB): candidate for DROP INDEX CONCURRENTLY" % (
                                               i["schema"], i["name"], i["table"], mb),
                           "%s.%s" % (i["schema"], i["name"]), round(mb, 3), _limit(th["unused_index_mb"], sev)))
    for d in data.get("duplicates", []):
        out.append(finding("indexes", "warning", "Indexes %s on %s.%s are duplicates (same columns, operator classes, "
                                                 "expressions and predicate): keep one" % (
                                                     ", ".join(d["indexes"]), d["schema"], d["table"]),
                           "%s.%s" % (d["schema"], d["table"])))
    for i in data.get("invalid", []):
        out.append(finding("indexes", "warning", "Index %s.%s on %s is invalid (a failed CREATE INDEX CONCURRENTLY?): "
                                                 "it costs writes but is never used; REINDEX or drop it" % (
                                                     i["schema"], i["name"], i["table"]),
                           "%s.%s" % (i["schema"], i["name"])))
    return out


def findings_vacuum(data, th):
    out = []
    for t in data.get("tables", []):
        obj = "%s.%s" % (t["schema"], t["name"])
        if (t["dead_tuples"] or 0) >= th["vacuum_min_dead_tuples"]:
            sev = evaluate(t["dead_percent"], th["dead_tuple_percent"])
            if sev:
                out.append(finding("vacuum", sev, "Table %s has %d dead tuples (%.1f%% of rows); last vacuum: %s" % (
                    obj, t["dead_tuples"], t["dead_percent"], t["last_autovacuum"] or t["last_vacuum"] or "never"),
                    obj, t["dead_percent"], _limit(th["dead_tuple_percent"], sev)))
        if (t["live_tuples"] or 0) >= th["stale_stats_min_rows"]:
            age = t["days_since_analyze"]
            sev = "critical" if age is None and th["analyze_age_days"].get("critical") is not None else None
            sev = sev or evaluate(age, th["analyze_age_days"])
            if sev:
                out.append(finding("vacuum", sev, "Table %s (%d rows) was %s" % (
                    obj, t["live_tuples"], "never analyzed" if age is None else "last analyzed %.1f days ago" % age),
                    obj, age, _limit(th["analyze_age_days"], sev)))
    return out


def findings_wraparound(data, th):
    out = []
    for d in data.get("databases", []):
        sev = evaluate(d["xid_age"], th["xid_age"])
        if sev:
            out.append(finding("wraparound", sev, "Database %s: datfrozenxid age is %d (%.1f%% of the way to "
                                                  "wraparound); run VACUUM (FREEZE)" % (
                                                      d["database"], d["xid_age"], d["percent_towards_wraparound"]),
                               d["database"], d["xid_age"], _limit(th["xid_age"], sev)))
    for s in data.get("sequences", []):
        sev = evaluate(s.get("percent_used"), th["sequence_percent"])
        if sev:
            owner = " (column %s.%s)" % (s["owned_by_table"], s["owned_by_column"]) if s.get("owned_by_column") else ""
            out.append(finding("wraparound", sev, "Sequence %s.%s%s is %.1f%% used (%d of %d)" % (
                s["schema"], s["name"], owner, s["percent_used"], s["last_value"], s["max_value"]),
                "%s.%s" % (s["schema"], s["name"]), s["percent_used"], _limit(th["sequence_percent"], sev)))
    return out


def findings_replication(data, th):
    out = []
    for r in data.get("replicas", []):
        name = r["application_name"] or r["client_addr"]
        sev = evaluate(r["replay_lag_seconds"], th["replication_lag_seconds"])
        if sev:
            out.append(finding("replication", sev, "Replica %s replays %.1f s behind" % (name, r["replay_lag_seconds"]),
                               name, r["replay_lag_seconds"], _limit(th["replication_lag_seconds"], sev)))
        mb = (r["replay_lag_bytes"] or 0) / MB
        sev = evaluate(mb, th["replication_lag_mb"])
        if sev:
            out.append(finding("replication", sev, "Replica %s has %.1f MB of WAL not replayed" % (name, mb),
                               name, round(mb, 3), _limit(th["replication_lag_mb"], sev)))
    for s in data.get("slots", []):
        if s["active"]:
            continue
        mb = (s["retained_bytes"] or 0) / MB
        sev = evaluate(mb, th["inactive_slot_retained_mb"])
        if sev:
            out.append(finding("replication", sev, "Replication slot %s (%s) is inactive and retains %.1f MB of WAL; "
                                                   "drop it if its consumer is gone" % (s["slot_name"], s["slot_type"], mb),
                               s["slot_name"], round(mb, 3), _limit(th["inactive_slot_retained_mb"], sev)))
    if data.get("in_recovery") and data.get("replay_delay_seconds") is not None:
        sev = evaluate(data["replay_delay_seconds"], th["replication_lag_seconds"])
        if sev:
            out.append(finding("replication", sev, "This standby last replayed a transaction %.1f s ago"
                               % data["replay_delay_seconds"], "standby", data["replay_delay_seconds"],
                               _limit(th["replication_lag_seconds"], sev)))
    return out


def findings_sizes(data, th):
    return []


def section_findings(section, data, th, database=None):
    if section == "statements":
        return findings_statements(data, th, database)
    return globals()["findings_" + section](data, th)


# ------------------------------------------------------------------ compare

def diff_snapshots(old, new, th, regression_factor):
    """Differences between two snapshots -> (diff, findings)."""
    diff = dict(new_slow_queries=[], regressions=[], became_unused=[], became_used=[], new_indexes=[],
                dropped_indexes=[], size_growth=[], statements_reset=False)
    findings = []
    old_st, new_st = old.get("statements", {}), new.get("statements", {})
    mean_th = th["statement_mean_ms"]
    for qid, cur in sorted(new_st.items()):
        before = old_st.get(qid)
        if before and cur["calls"] < before["calls"]:
            diff["statements_reset"] = True
            before = None
        if before is None:
            sev = evaluate(cur["mean_ms"], mean_th)
            if sev:
                item = dict(queryid=qid, mean_ms=cur["mean_ms"], calls=cur["calls"], query=cur["query"])
                diff["new_slow_queries"].append(item)
                findings.append(finding("compare", sev, "New slow query %s since the snapshot: %.1f ms mean over %d "
                                                        "call(s): %s" % (qid, cur["mean_ms"], cur["calls"],
                                                                         _short(cur["query"])),
                                        "queryid:%s" % qid, cur["mean_ms"], _limit(mean_th, sev)))
            continue
        calls = cur["calls"] - before["calls"]
        if calls <= 0 or not before["mean_ms"]:
            continue
        recent_mean = (cur["total_ms"] - before["total_ms"]) / calls
        factor = recent_mean / before["mean_ms"]
        if factor >= regression_factor:
            item = dict(queryid=qid, mean_ms_before=before["mean_ms"], mean_ms_since=round(recent_mean, 3),
                        factor=round(factor, 2), calls_since=calls, query=cur["query"])
            diff["regressions"].append(item)
            sev = "critical" if factor >= 2 * regression_factor else "warning"
            findings.append(finding("compare", sev, "Query %s got %.1fx slower: %.2f ms mean before, %.2f ms over the "
                                                    "%d call(s) since: %s" % (qid, factor, before["mean_ms"], recent_mean,
                                                                              calls, _short(cur["query"])),
                                    "queryid:%s" % qid, round(factor, 2), regression_factor))
    old_ix, new_ix = old.get("indexes", {}), new.get("indexes", {})
    for name, cur in sorted(new_ix.items()):
        before = old_ix.get(name)
        if before is None:
            diff["new_indexes"].append(name)
            continue
        if cur.get("exempt"):
            continue
        if before["idx_scan"] > 0 and cur["idx_scan"] == before["idx_scan"]:
            diff["became_unused"].append(dict(index=name, idx_scan=cur["idx_scan"]))
            findings.append(finding("compare", "info", "Index %s was used before the snapshot but not since (%d scans)"
                                    % (name, cur["idx_scan"]), name, 0))
        elif before["idx_scan"] == 0 and cur["idx_scan"] > 0:
            diff["became_used"].append(dict(index=name, idx_scan=cur["idx_scan"]))
            findings.append(finding("compare", "info", "Index %s was unused at the snapshot and has %d scan(s) now"
                                    % (name, cur["idx_scan"]), name, cur["idx_scan"]))
    diff["dropped_indexes"] = sorted(set(old_ix) - set(new_ix))
    growth_th = th["size_growth_percent"]
    for name, size in sorted(new.get("tables", {}).items()):
        before = old.get("tables", {}).get(name)
        if not before or size < th["size_growth_min_mb"] * MB:
            continue
        pct = 100.0 * (size - before) / before
        sev = evaluate(pct, growth_th)
        if sev:
            diff["size_growth"].append(dict(relation=name, bytes_before=before, bytes_now=size, percent=round(pct, 1)))
            findings.append(finding("compare", sev, "Relation %s grew %.0f%% since the snapshot (%.1f MB -> %.1f MB)"
                                    % (name, pct, before / MB, size / MB), name, round(pct, 1), _limit(growth_th, sev)))
    return diff, findings
