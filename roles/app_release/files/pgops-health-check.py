#!/usr/bin/env python3
"""HTTP health gate of pgops.deploy app_release (standard library only).

    pgops-health-check.py BASE_URL CHECKS_JSON [TIMEOUT_S]

CHECKS_JSON is a list of {"path", "status", "json": {dotted.key: value}, "max_latency_ms"}.
Prints one JSON document {"ok": bool, "failed": [names], "results": [...]} and exits 0
only when every check passed, 1 otherwise (2 on bad arguments).
"""

import json
import sys
import time
import urllib.error
import urllib.request


def lookup(doc, dotted):
    for part in dotted.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return None, False
        doc = doc[part]
    return doc, True


def run_check(base, check, timeout):
    path = check["path"]
    want_status = int(check.get("status", 200))
    max_ms = check.get("max_latency_ms")
    result = {"name": check.get("name") or "GET %s" % path, "path": path, "expected_status": want_status,
              "max_latency_ms": max_ms, "status": None, "latency_ms": None, "json": None, "problems": []}
    started = time.monotonic()
    body = b""
    try:
        with urllib.request.urlopen(base.rstrip("/") + path, timeout=timeout) as resp:
            result["status"] = resp.status
            body = resp.read(65536)
    except urllib.error.HTTPError as exc:
        result["status"] = exc.code
        body = exc.read(65536)
    except (urllib.error.URLError, OSError) as exc:
        result["problems"].append("request failed: %s" % getattr(exc, "reason", exc))
    result["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    if result["status"] is not None and result["status"] != want_status:
        result["problems"].append("status %s, expected %s" % (result["status"], want_status))
    if max_ms is not None and result["latency_ms"] > float(max_ms):
        result["problems"].append("latency %s ms, expected <= %s ms" % (result["latency_ms"], max_ms))
    expected_json = check.get("json") or {}
    if body:
        try:
            result["json"] = json.loads(body)
        except ValueError:
            result["json"] = None
    for key, want in expected_json.items():
        got, found = lookup(result["json"], key)
        if not found:
            result["problems"].append("JSON key %r missing, expected %r" % (key, want))
        elif str(got) != str(want):
            result["problems"].append("JSON %s=%r, expected %r" % (key, got, want))
    result["ok"] = not result["problems"]
    return result


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    base, checks = argv[1], json.loads(argv[2])
    timeout = float(argv[3]) if len(argv) > 3 else 5.0
    results = [run_check(base, check, timeout) for check in checks]
    failed = ["%s: %s" % (r["name"], "; ".join(r["problems"])) for r in results if not r["ok"]]
    print(json.dumps({"ok": not failed, "failed": failed, "results": results}))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
