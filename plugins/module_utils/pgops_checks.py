# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure check logic shared by pg_preflight_facts and pg_verify.

Everything here is side-effect free (no connection, no I/O) so it is unit
tested directly: sizes, versions, freeze/maintenance windows, JSON path
assertions, EXPLAIN plan walking, row-count tolerances and log scanning.
A check is a dict: name, status (ok|warning|failed|skipped), expected, found,
message and optional host / duration_ms / details.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

STATUSES = ("ok", "warning", "failed", "skipped")
SEVERITIES = ("fail", "warn", "ignore")


# ------------------------------------------------------------------ records
def make_check(name, status, expected, found, message=None, **extra):
    if status not in STATUSES:
        raise ValueError("unknown check status %r" % (status,))
    check = dict(name=name, status=status, expected=expected, found=found,
                 message=message or "%s: expected %s, found %s" % (name, expected, found))
    for key, value in extra.items():
        if value is not None:
            check[key] = value
    return check


def status_for(passed, severity="fail"):
    """Status of a check that passed or not, given its configured severity."""
    if severity not in SEVERITIES:
        raise ValueError("severity must be one of %s, got %r" % (", ".join(SEVERITIES), severity))
    if passed:
        return "ok"
    return {"fail": "failed", "warn": "warning", "ignore": "ok"}[severity]


def summarize(checks):
    failed = [c["name"] for c in checks if c["status"] == "failed"]
    warnings = [c["name"] for c in checks if c["status"] == "warning"]
    return dict(status="failed" if failed else "ok", failed=failed, warnings=warnings,
                total=len(checks))


# -------------------------------------------------------------------- sizes
_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kb": 1024, "kib": 1024,
    "m": 1024 ** 2, "mb": 1024 ** 2, "mib": 1024 ** 2,
    "g": 1024 ** 3, "gb": 1024 ** 3, "gib": 1024 ** 3,
    "t": 1024 ** 4, "tb": 1024 ** 4, "tib": 1024 ** 4,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value):
    """Bytes from an int (bytes) or a string like '10GB', '512 MiB', '1.5T' (binary units)."""
    if isinstance(value, bool):
        raise ValueError("size must be a number of bytes or a string like '10GB', got %r" % (value,))
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("size must not be negative, got %r" % (value,))
        return int(value)
    match = _SIZE_RE.match(str(value))
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError("size must be a number of bytes or a string like '10GB', got %r" % (value,))
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_bytes(num):
    num = float(num)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(num) < 1024 or unit == "TiB":
            return ("%d %s" % (num, unit)) if unit == "B" else ("%.1f %s" % (num, unit))
        num /= 1024.0
    return "%.1f TiB" % num  # pragma: no cover


# ----------------------------------------------------------------- versions
def version_tuple(text):
    """(15, 4) from '15.4', (3, 3, 4) from '3.3.4dev'; non-numeric tails are ignored."""
    parts = []
    for piece in str(text).strip().split("."):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group(0)))
    if not parts:
        raise ValueError("not a version: %r" % (text,))
    return tuple(parts)


def version_ge(found, minimum):
    a, b = list(version_tuple(found)), list(version_tuple(minimum))
    width = max(len(a), len(b))
    return a + [0] * (width - len(a)) >= b + [0] * (width - len(b))


# ------------------------------------------------------- freeze/maintenance
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _tz(name):
    if not name or name.upper() == "UTC":
        return datetime.timezone.utc
    match = re.match(r"^(?:UTC)?([+-])(\d{2}):?(\d{2})$", name)
    if match:
        delta = datetime.timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
        return datetime.timezone(delta if match.group(1) == "+" else -delta)
    try:
        from zoneinfo import ZoneInfo
    except ImportError:  # Python < 3.9 on the controller
        raise ValueError("timezone %r needs Python >= 3.9 (zoneinfo); use UTC or +HH:MM" % name)
    try:
        return ZoneInfo(name)
    except Exception:
        raise ValueError("unknown timezone %r" % (name,))


def parse_now(value=None):
    """Aware datetime: now (UTC) or an injected ISO 8601 timestamp (naive = UTC)."""
    if value in (None, ""):
        return datetime.datetime.now(datetime.timezone.utc)
    text = str(value).strip().replace("Z", "+00:00")
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("now must be an ISO 8601 timestamp like 2025-11-21T16:00:00+07:00, got %r" % (value,))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def _parse_local(text, tz, what):
    try:
        parsed = datetime.datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise ValueError("%s must look like 2025-12-20 00:00 (ISO 8601), got %r" % (what, text))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def _parse_hhmm(text, what):
    match = re.match(r"^(\d{1,2}):(\d{2})$", str(text).strip())
    if not match or int(match.group(1)) > 24 or int(match.group(2)) > 59:
        raise ValueError("%s must be HH:MM, got %r" % (what, text))
    return int(match.group(1)) * 60 + int(match.group(2))


def window_matches(window, now):
    """Whether aware datetime `now` falls inside one window rule.

    A rule may combine: `weekdays` (names, e.g. [Friday]), `start_time`/`end_time`
    (HH:MM daily range; may wrap midnight), `start`/`end` (absolute date-times),
    all interpreted in `timezone` (IANA name, UTC or +HH:MM; default UTC).
    Every given condition must hold. Raises ValueError for malformed rules.
    """
    name = window.get("name") or "unnamed window"
    known = {"name", "weekdays", "start_time", "end_time", "start", "end", "timezone", "reason"}
    unknown = set(window) - known
    if unknown:
        raise ValueError("window %r: unknown keys %s (allowed: %s)" % (name, sorted(unknown), sorted(known)))
    if not any(window.get(k) for k in ("weekdays", "start_time", "end_time", "start", "end")):
        raise ValueError("window %r needs weekdays, start_time/end_time or start/end" % name)
    tz = _tz(window.get("timezone"))
    local = now.astimezone(tz)
    weekdays = window.get("weekdays") or []
    if isinstance(weekdays, str):
        weekdays = [weekdays]
    if weekdays:
        wanted = []
        for day in weekdays:
            day_l = str(day).strip().lower()
            matches = [w for w in WEEKDAYS if w.startswith(day_l[:3])] if len(day_l) >= 3 else []
            if len(matches) != 1:
                raise ValueError("window %r: unknown weekday %r (use Monday..Sunday)" % (name, day))
            wanted.append(WEEKDAYS.index(matches[0]))
        if local.weekday() not in wanted:
            return False
    if window.get("start_time") or window.get("end_time"):
        start = _parse_hhmm(window.get("start_time") or "00:00", "window %r start_time" % name)
        end = _parse_hhmm(window.get("end_time") or "24:00", "window %r end_time" % name)
        minute = local.hour * 60 + local.minute
        inside = start <= minute < end if start <= end else (minute >= start or minute < end)
        if not inside:
            return False
    if window.get("start") and now < _parse_local(window["start"], tz, "window %r start" % name):
        return False
    if window.get("end") and now >= _parse_local(window["end"], tz, "window %r end" % name):
        return False
    return True


def describe_window(window):
    bits = []
    if window.get("weekdays"):
        days = window["weekdays"]
        bits.append("on " + ", ".join([days] if isinstance(days, str) else [str(d) for d in days]))
    if window.get("start_time") or window.get("end_time"):
        bits.append("%s-%s" % (window.get("start_time") or "00:00", window.get("end_time") or "24:00"))
    if window.get("start") or window.get("end"):
        bits.append("from %s to %s" % (window.get("start") or "-", window.get("end") or "-"))
    bits.append(window.get("timezone") or "UTC")
    return "%s (%s)" % (window.get("name") or "unnamed window", " ".join(bits))


def evaluate_schedule(now, freeze_windows=None, maintenance_windows=None):
    """(active_freezes, in_maintenance) — in_maintenance is None without maintenance windows."""
    active = [describe_window(w) for w in (freeze_windows or []) if window_matches(w, now)]
    in_maintenance = None
    if maintenance_windows:
        in_maintenance = [describe_window(w) for w in maintenance_windows if window_matches(w, now)]
    return active, in_maintenance


# ------------------------------------------------------------ JSON assertions
_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


def json_path_get(doc, path):
    """(found, value) for a dotted path with [index] parts, e.g. 'data.items[0].id'."""
    if path in (None, "", "$", "."):
        return True, doc
    current = doc
    for match in _PATH_TOKEN.finditer(str(path)):
        key, index = match.group(1), match.group(2)
        if index is not None or (key is not None and key.lstrip("-").isdigit() and isinstance(current, list)):
            idx = int(index if index is not None else key)
            if not isinstance(current, list) or not -len(current) <= idx < len(current):
                return False, None
            current = current[idx]
        else:
            if not isinstance(current, dict) or key not in current:
                return False, None
            current = current[key]
    return True, current


def json_assertion(doc, assertion):
    """(passed, expected_text, found_text) for {path, equals|contains|regex|exists}."""
    path = assertion.get("path", "")
    ops = [k for k in ("equals", "contains", "regex", "exists", "not_equals") if k in assertion]
    if len(ops) != 1:
        raise ValueError("JSON assertion on %r needs exactly one of equals, not_equals, contains, regex, exists" % path)
    op = ops[0]
    want = assertion[op]
    found, value = json_path_get(doc, path)
    if op == "exists":
        return found == bool(want), "%s %s" % (path, "exists" if want else "absent"), \
            ("present: %r" % (value,)) if found else "absent"
    if not found:
        return False, "%s %s %r" % (path, op, want), "path absent"
    if op == "equals":
        return value == want, "%s == %r" % (path, want), repr(value)
    if op == "not_equals":
        return value != want, "%s != %r" % (path, want), repr(value)
    if op == "contains":
        if isinstance(value, (list, dict)):
            ok = want in value
        else:
            ok = str(want) in str(value)
        return ok, "%s contains %r" % (path, want), repr(value)
    return re.search(str(want), str(value)) is not None, "%s matches /%s/" % (path, want), repr(value)


# ---------------------------------------------------------------- EXPLAIN
def _plan_values(plan, key):
    """Every value of ``key`` in an EXPLAIN (FORMAT JSON) document, depth first."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get(key):
                found.append(node[key])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(plan)
    return found


def plan_index_names(plan):
    """Every 'Index Name' in an EXPLAIN (FORMAT JSON) document, depth first."""
    return _plan_values(plan, "Index Name")


def plan_node_types(plan):
    return _plan_values(plan, "Node Type")


def median(values):
    vals = sorted(values)
    if not vals:
        raise ValueError("median of nothing")
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2.0


def improvement_pct(baseline_ms, measured_ms):
    if not baseline_ms:
        return None
    return round((float(baseline_ms) - float(measured_ms)) / float(baseline_ms) * 100.0, 1)


# ------------------------------------------------------------- row counts
def tolerance_allows(baseline, delta, tolerance):
    """Whether |delta| rows fit in a tolerance {absolute: N} and/or {percent: P} (either suffices)."""
    tolerance = tolerance or {}
    unknown = set(tolerance) - {"absolute", "percent"}
    if unknown:
        raise ValueError("row count tolerance keys are absolute/percent, got %s" % sorted(unknown))
    allowed = float(tolerance.get("absolute") or 0)
    if tolerance.get("percent"):
        allowed = max(allowed, abs(baseline) * float(tolerance["percent"]) / 100.0)
    return abs(delta) <= allowed, allowed


def compare_row_counts(baseline, current, tolerances=None, default_tolerance=None,
                       loss_severity="fail", growth_severity="warn"):
    """One check per baseline table: loss beyond tolerance fails, growth beyond it warns."""
    checks = []
    tolerances = tolerances or {}
    for table in sorted(baseline):
        before = int(baseline[table])
        name = "row_count:%s" % table
        if current.get(table) is None:
            checks.append(make_check(name, status_for(False, loss_severity), "%d rows (table present)" % before,
                                     "table missing", "row count of %s: expected the table with %d rows, found it missing"
                                     % (table, before), details=dict(baseline=before, current=None)))
            continue
        after = int(current[table])
        delta = after - before
        tol = tolerances.get(table, default_tolerance)
        fits, allowed = tolerance_allows(before, delta, tol)
        expected = "%d rows (tolerance %s)" % (before, _tol_text(tol, allowed))
        found = "%d rows (%+d)" % (after, delta)
        if delta == 0 or fits:
            status = "ok"
        elif delta < 0:
            status = status_for(False, loss_severity)
        else:
            status = status_for(False, growth_severity)
        what = "lost" if delta < 0 else "gained"
        msg = "row count of %s: expected %s, found %s" % (table, expected, found)
        if status != "ok":
            msg += " — %s %d rows, more than the %d allowed" % (what, abs(delta), int(allowed))
        checks.append(make_check(name, status, expected, found, msg,
                                 details=dict(baseline=before, current=after, delta=delta, allowed=allowed)))
    return checks


def _tol_text(tol, allowed):
    if not tol:
        return "none"
    bits = []
    if tol.get("absolute"):
        bits.append("±%s rows" % tol["absolute"])
    if tol.get("percent"):
        bits.append("±%s%%" % tol["percent"])
    return "%s = ±%d" % (" or ".join(bits), int(allowed))


# ------------------------------------------------------------------- logs
DEFAULT_ERROR_PATTERNS = [r"Traceback \(most recent call last\)", r"\bERROR\b", r"\bCRITICAL\b",
                          r"\" 5\d\d\b", r" 5\d\d (?:Internal|Bad|Service|Gateway)"]
_TS_RE = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,]\d+)?\s*(Z|[+-]\d{2}:?\d{2})?")


def line_timestamp(line, default_tz=datetime.timezone.utc):
    """Aware datetime of a leading ISO-like timestamp in the first 40 chars, else None."""
    match = _TS_RE.search(line[:40])
    if not match:
        return None
    zone = match.group(3)
    try:
        stamp = datetime.datetime.fromisoformat("%sT%s" % (match.group(1), match.group(2)))
    except ValueError:
        return None
    if zone:
        zone = "+00:00" if zone == "Z" else (zone if ":" in zone else zone[:3] + ":" + zone[3:])
        stamp = stamp.replace(tzinfo=datetime.datetime.fromisoformat("2000-01-01T00:00:00" + zone).tzinfo)
    else:
        stamp = stamp.replace(tzinfo=default_tz)
    return stamp


def scan_log_lines(lines, patterns=None, allowlist=None, since=None, max_findings=50, source=""):
    """Lines matching an error pattern and no allowlist pattern.

    With `since`, lines whose (own or inherited) timestamp is older are skipped;
    lines without a timestamp (Traceback bodies) inherit the previous one.
    Returns (findings, scanned_count).
    """
    err = [re.compile(p) for p in (patterns or DEFAULT_ERROR_PATTERNS)]
    allow = [re.compile(p) for p in (allowlist or [])]
    findings = []
    scanned = 0
    current_ts = None
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        stamp = line_timestamp(line)
        if stamp is not None:
            current_ts = stamp
        if since is not None and current_ts is not None and current_ts < since:
            continue
        scanned += 1
        if any(p.search(line) for p in err) and not any(p.search(line) for p in allow):
            if len(findings) < max_findings:
                findings.append(dict(source=source, line=lineno, text=line[:500]))
    return findings, scanned
