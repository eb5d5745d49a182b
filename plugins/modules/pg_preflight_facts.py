#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_preflight_facts
short_description: Read-only pre-deploy checks of a PostgreSQL server, its host and the deploy schedule
description:
  - Collects facts and evaluates every preflight check in one pass without changing anything, so the
    caller can show all problems at once. Never fails because a check failed; it returns C(checks),
    each with C(status) (ok, warning, failed, skipped), C(expected), C(found) and a C(message).
  - Section C(host) checks free disk space of given paths (nearest existing parent when a path does not
    exist yet) and available memory on the host that runs the module.
  - Section C(database) checks server version, PostGIS availability, free space of the server's
    C(data_directory), long-running queries, idle-in-transaction sessions, blocking locks, connection
    usage and replication lag. An unreachable server is reported as a failed C(database_connection) check.
  - Section C(schedule) evaluates change-freeze and maintenance windows against O(now) (default the clock
    of the host running the module, normally the controller).
version_added: 0.1.0
author: pgops.deploy contributors
extends_documentation_fragment:
  - pgops.deploy.postgres
options:
  sections:
    description: Which groups of checks to run.
    type: list
    elements: str
    choices: [host, database, schedule]
    default: [host, database]
  severity:
    description:
      - Per-check severity overriding the defaults, C(fail), C(warn) or C(ignore). Keys are check names
        without the host suffix (for example C(idle_in_transaction), C(blocking_locks), C(disk)).
    type: dict
    default: {}
  pg_min_version:
    description: Minimum PostgreSQL server version.
    type: str
    default: '13'
  postgis_min_version:
    description: Minimum PostGIS version available on the server (C(pg_available_extensions)). Empty skips the check.
    type: str
    default: '3.0'
  data_directory_min_free:
    description: Minimum free space on the server's data directory; bytes or a size such as C(10GB).
    type: raw
    default: 10GB
  disk_paths:
    description:
      - Paths to check for free space. Each item has C(name), C(path), C(min_free) (bytes or a size such as
        C(10GB)) and optional C(estimate_backup) (also require the estimated backup size, see O(backup_size_factor)).
    type: list
    elements: dict
    default: []
  backup_size_factor:
    description: Estimated backup size is C(pg_database_size(login_db)) times this factor.
    type: float
    default: 1.0
  database_size_bytes:
    description: Database size used for the backup estimate in section C(host) when the database section does not run.
    type: int
  memory_min_available:
    description: Minimum C(MemAvailable) of the host; bytes or a size such as C(512MB). C(0) skips.
    type: raw
    default: 0
  long_query_seconds:
    description: Active queries running longer than this are reported.
    type: int
    default: 300
  idle_in_transaction_seconds:
    description: Sessions idle in a transaction longer than this are reported.
    type: int
    default: 60
  connections_max_pct:
    description: Maximum share of C(max_connections) in use, in percent.
    type: float
    default: 80
  replication_max_lag_seconds:
    description: Maximum replay lag of any replica (only checked when replicas exist).
    type: float
    default: 60
  freeze_windows:
    description:
      - Change-freeze rules; deploying inside one fails unless O(freeze_override). Each rule may have
        C(name), C(weekdays) (for example V([Friday])), C(start_time)/C(end_time) (HH:MM, may wrap midnight),
        C(start)/C(end) (date-times) and C(timezone) (IANA name, UTC or +HH:MM). All given conditions must hold.
    type: list
    elements: dict
    default: []
  maintenance_windows:
    description: When not empty, deploying is only allowed inside one of these windows (same format as O(freeze_windows)).
    type: list
    elements: dict
    default: []
  now:
    description: ISO 8601 time to evaluate windows at (tests); default the current time.
    type: str
  freeze_override:
    description: Deploy inside a freeze / outside maintenance windows anyway (reported as a warning).
    type: bool
    default: false
  freeze_override_reason:
    description: Required with O(freeze_override); recorded in the check.
    type: str
    default: ''
notes:
  - Check mode is supported; the module only reads.
"""

EXAMPLES = r"""
- name: Check the database server before the deploy
  pgops.deploy.pg_preflight_facts:
    login_db: santri
    sections: [host, database]
    disk_paths:
      - {name: backup_path, path: /var/backups/pgops, min_free: 10GB, estimate_backup: true}
    idle_in_transaction_seconds: 30
  register: preflight

- name: Refuse a Friday deploy
  pgops.deploy.pg_preflight_facts:
    sections: [schedule]
    freeze_windows:
      - {name: no-friday, weekdays: [Friday], timezone: Asia/Jakarta}
  delegate_to: localhost
"""

RETURN = r"""
checks:
  description: Every check evaluated, in order.
  returned: always
  type: list
  elements: dict
  sample:
    - name: idle_in_transaction
      status: failed
      expected: no session idle in transaction longer than 60s
      found: "pid 4242 (app@santri, app 'psql') idle in transaction for 75s: UPDATE ..."
summary:
  description: C(status) (ok or failed), names of C(failed) and C(warnings) checks, C(total).
  returned: always
  type: dict
facts:
  description: Raw facts (server_version, data_directory, database_size_bytes, max_connections, memory, disk).
  returned: always
  type: dict
queries:
  description: SQL statements executed.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_checks import (
    evaluate_schedule, format_bytes, make_check, parse_now, parse_size, status_for, summarize,
    version_ge,
)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_postgres import (
    ConnectFailed, postgres_common_argument_spec, try_session,
)

DEFAULT_SEVERITY = dict(
    database_connection="fail", server_version="fail", postgis_available="fail", disk="fail",
    memory="fail", long_running_queries="fail", idle_in_transaction="fail", blocking_locks="fail",
    connections="warn", replication_lag="warn", freeze_window="fail", maintenance_window="fail",
)



class Preflight(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.checks = []
        self.facts = {}
        self.session = None
        self.severity = dict(DEFAULT_SEVERITY)
        for key, value in (self.params["severity"] or {}).items():
            if value not in ("fail", "warn", "ignore"):
                module.fail_json(msg="severity of %r must be fail, warn or ignore, got %r" % (key, value))
            self.severity[key] = value
        self.host = None

    def add(self, key, name, passed, expected, found, message=None, **extra):
        self.checks.append(make_check(name, status_for(passed, self.severity.get(key, "fail")),
                                      expected, found, message, check=key, **extra))

    # ------------------------------------------------------------ host
    @staticmethod
    def _existing_parent(path):
        path = os.path.abspath(path)
        while not os.path.exists(path) and path != os.path.dirname(path):
            path = os.path.dirname(path)
        return path

    def _free_bytes(self, path):
        probe = self._existing_parent(path)
        st = os.statvfs(probe)
        return st.f_bavail * st.f_frsize, probe

    def disk(self, name, path, min_free, extra_needed=0, extra_text=""):
        try:
            minimum = parse_size(min_free)
        except ValueError as exc:
            self.module.fail_json(msg="disk check %r: %s" % (name, exc))
        try:
            free, probe = self._free_bytes(path)
        except OSError as exc:
            self.add("disk", "disk:%s" % name, False, "free space on %s" % path, "cannot stat: %s" % exc)
            return
        needed = max(minimum, extra_needed)
        expected = ">= %s free on %s" % (format_bytes(needed), path)
        if extra_text:
            expected += " (max of threshold %s and %s)" % (format_bytes(minimum), extra_text)
        found = "%s free on %s%s" % (format_bytes(free), probe, "" if probe == os.path.abspath(path) else
                                     " (nearest existing parent)")
        self.facts.setdefault("disk", {})[name] = dict(path=path, probe=probe, free_bytes=free, needed_bytes=needed)
        self.add("disk", "disk:%s" % name, free >= needed, expected, found,
                 "disk %s: expected %s, found %s" % (name, expected, found))

    def host_checks(self):
        db_size = self.facts.get("database_size_bytes", self.params.get("database_size_bytes"))
        for item in self.params["disk_paths"]:
            if not item.get("name") or not item.get("path"):
                self.module.fail_json(msg="disk_paths items need name and path, got %r" % (item,))
            extra, text = 0, ""
            if item.get("estimate_backup") and db_size is not None:
                extra = int(db_size * self.params["backup_size_factor"])
                text = "estimated backup %s = database %s x %s" % (
                    format_bytes(extra), format_bytes(db_size), self.params["backup_size_factor"])
            self.disk(item["name"], item["path"], item.get("min_free", 0), extra, text)
        try:
            minimum = parse_size(self.params["memory_min_available"])
        except ValueError as exc:
            self.module.fail_json(msg="memory_min_available: %s" % exc)
        if minimum:
            available = None
            try:
                with open("/proc/meminfo") as fh:
                    for line in fh:
                        if line.startswith("MemAvailable:"):
                            available = int(line.split()[1]) * 1024
            except OSError:
                pass
            self.facts["memory_available_bytes"] = available
            self.add("memory", "memory", available is not None and available >= minimum,
                     ">= %s MemAvailable" % format_bytes(minimum),
                     "unknown (/proc/meminfo unreadable)" if available is None else format_bytes(available))

    # -------------------------------------------------------- database
    def connect(self):
        try:
            self.session = try_session(self.module)
            return True
        except ConnectFailed as exc:
            self.add("database_connection", "database_connection", False,
                     "a connection to database %r" % self.params["login_db"], str(exc))
            return False

    def q(self, sql, params=None):
        return self.session.query(sql, params)

    def database_checks(self):
        if not self.connect():
            return
        s = self.session
        p = self.params
        version = s.scalar("SHOW server_version")
        self.facts["server_version"] = version
        self.facts["server_version_num"] = s.server_version_num
        self.add("server_version", "server_version", version_ge(version, p["pg_min_version"]),
                 "PostgreSQL >= %s" % p["pg_min_version"], "PostgreSQL %s" % version)

        if p["postgis_min_version"]:
            row = self.q("SELECT default_version, installed_version FROM pg_catalog.pg_available_extensions "
                         "WHERE name = 'postgis'")
            if not row:
                self.add("postgis_available", "postgis_available", False,
                         "postgis >= %s in pg_available_extensions" % p["postgis_min_version"],
                         "postgis not available (package not installed on the server)")
            else:
                ver = row[0]["default_version"]
                self.facts["postgis_available_version"] = ver
                self.facts["postgis_installed_version"] = row[0]["installed_version"]
                self.add("postgis_available", "postgis_available", version_ge(ver, p["postgis_min_version"]),
                         "postgis >= %s available" % p["postgis_min_version"], "postgis %s available" % ver)

        size = s.scalar("SELECT pg_catalog.pg_database_size(current_database())")
        self.facts["database_size_bytes"] = int(size)
        try:
            datadir = s.scalar("SHOW data_directory")
        except Exception as exc:  # needs superuser or pg_read_all_settings
            datadir = None
            self.add("disk", "disk:data_directory", False, "readable data_directory setting",
                     "not readable by %r: %s (grant pg_read_all_settings)" % (p["login_user"], str(exc).strip()))
        if datadir:
            self.facts["data_directory"] = datadir
            self.disk("data_directory", datadir, p["data_directory_min_free"])

        self.activity_checks()

        max_conn = int(s.scalar("SHOW max_connections"))
        used = int(s.scalar("SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend'"))
        pct = round(100.0 * used / max_conn, 1)
        self.facts.update(max_connections=max_conn, connections_used=used)
        self.add("connections", "connections", pct <= p["connections_max_pct"],
                 "<= %s%% of max_connections in use" % p["connections_max_pct"],
                 "%d of %d (%s%%)" % (used, max_conn, pct))

        self.replication_checks()

    def activity_checks(self):
        p = self.params
        long_rows = self.q(
            "SELECT pid, usename, datname, application_name, state, "
            "extract(epoch FROM now() - query_start)::int AS seconds, left(query, 120) AS query "
            "FROM pg_catalog.pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend' AND now() - query_start > make_interval(secs => %s) "
            "ORDER BY query_start", (p["long_query_seconds"],))
        self.add("long_running_queries", "long_running_queries", not long_rows,
                 "no query active longer than %ds" % p["long_query_seconds"],
                 "; ".join("pid %s (%s@%s, app %r) active for %ss: %s" % (
                     r["pid"], r["usename"], r["datname"], r["application_name"], r["seconds"], r["query"])
                     for r in long_rows) or "none", details=long_rows or None)

        idle_rows = self.q(
            "SELECT pid, usename, datname, application_name, state, "
            "extract(epoch FROM now() - state_change)::int AS seconds, "
            "extract(epoch FROM now() - xact_start)::int AS xact_seconds, left(query, 120) AS query "
            "FROM pg_catalog.pg_stat_activity WHERE state LIKE 'idle in transaction%%' "
            "AND pid <> pg_backend_pid() AND now() - state_change > make_interval(secs => %s) "
            "ORDER BY state_change", (p["idle_in_transaction_seconds"],))
        self.add("idle_in_transaction", "idle_in_transaction", not idle_rows,
                 "no session idle in transaction longer than %ds" % p["idle_in_transaction_seconds"],
                 "; ".join("pid %s (%s@%s, app %r) %s for %ss (transaction open %ss), last query: %s" % (
                     r["pid"], r["usename"], r["datname"], r["application_name"], r["state"], r["seconds"],
                     r["xact_seconds"], r["query"]) for r in idle_rows) or "none", details=idle_rows or None)

        blocked = self.q(
            "SELECT pid, pg_catalog.pg_blocking_pids(pid) AS blocked_by, "
            "extract(epoch FROM now() - query_start)::int AS seconds, left(query, 120) AS query "
            "FROM pg_catalog.pg_stat_activity WHERE cardinality(pg_catalog.pg_blocking_pids(pid)) > 0")
        self.add("blocking_locks", "blocking_locks", not blocked, "no session waiting on a lock held by another",
                 "; ".join("pid %s waits %ss on pid(s) %s: %s" % (r["pid"], r["seconds"],
                                                                    ",".join(str(b) for b in r["blocked_by"]),
                                                                    r["query"]) for r in blocked) or "none",
                 details=blocked or None)

    def replication_checks(self):
        p = self.params
        if self.session.scalar("SELECT pg_catalog.pg_is_in_recovery()"):
            self.checks.append(make_check("replication_lag", "skipped", "primary", "server is a replica",
                                          check="replication_lag"))
            return
        rows = self.q("SELECT application_name, client_addr::text AS client_addr, state, "
                      "coalesce(extract(epoch FROM replay_lag), 0)::float AS lag_seconds, "
                      "pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), replay_lsn)::bigint AS lag_bytes "
                      "FROM pg_catalog.pg_stat_replication")
        self.facts["replicas"] = rows
        if not rows:
            self.checks.append(make_check("replication_lag", "skipped", "replay lag <= %ss" % p["replication_max_lag_seconds"],
                                          "no replicas connected", check="replication_lag"))
            return
        worst = max(rows, key=lambda r: r["lag_seconds"])
        self.add("replication_lag", "replication_lag", worst["lag_seconds"] <= p["replication_max_lag_seconds"],
                 "replay lag <= %ss on every replica" % p["replication_max_lag_seconds"],
                 "; ".join("%s (%s) %s: %.1fs / %s bytes behind" % (r["application_name"], r["client_addr"], r["state"],
                                                                    r["lag_seconds"], r["lag_bytes"]) for r in rows))

    # -------------------------------------------------------- schedule
    def schedule_checks(self):
        p = self.params
        try:
            now = parse_now(p.get("now"))
            active, maintenance = evaluate_schedule(now, p["freeze_windows"], p["maintenance_windows"])
        except ValueError as exc:
            self.module.fail_json(msg="freeze/maintenance windows: %s" % exc)
        self.facts["now"] = now.isoformat()
        override = p["freeze_override"]
        if override and not (p["freeze_override_reason"] or "").strip():
            self.module.fail_json(msg="freeze_override is true but freeze_override_reason is empty: "
                                      "say why this deploy may ignore the change freeze")
        for key, name, bad, expected, found in (
            ("freeze_window", "freeze_window", bool(active), "outside every change-freeze window",
             ("inside " + "; ".join(active)) if active else "outside (%d rules)" % len(p["freeze_windows"])),
            ("maintenance_window", "maintenance_window", maintenance is not None and not maintenance,
             "inside a maintenance window" if p["maintenance_windows"] else "no maintenance windows declared",
             "no maintenance windows declared" if maintenance is None else
             (("inside " + "; ".join(maintenance)) if maintenance else "outside all %d maintenance windows"
              % len(p["maintenance_windows"]))),
        ):
            found = "%s at %s" % (found, now.isoformat())
            if bad and override:
                self.checks.append(make_check(name, "warning", expected, found,
                                              "%s: expected %s, found %s — overridden: %s" % (
                                                  name, expected, found, p["freeze_override_reason"]),
                                              check=key, override_reason=p["freeze_override_reason"]))
            else:
                self.add(key, name, not bad, expected, found)

    def run(self):
        sections = self.params["sections"]
        try:
            if "database" in sections:
                self.database_checks()
            if "host" in sections:
                self.host_checks()
            if "schedule" in sections:
                self.schedule_checks()
        finally:
            queries = self.session.queries if self.session else []
            if self.session:
                self.session.close()
        return queries


def main():
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(
        sections=dict(type="list", elements="str", choices=["host", "database", "schedule"],
                      default=["host", "database"]),
        severity=dict(type="dict", default={}),
        pg_min_version=dict(type="str", default="13"),
        postgis_min_version=dict(type="str", default="3.0"),
        data_directory_min_free=dict(type="raw", default="10GB"),
        disk_paths=dict(type="list", elements="dict", default=[]),
        backup_size_factor=dict(type="float", default=1.0),
        database_size_bytes=dict(type="int"),
        memory_min_available=dict(type="raw", default=0),
        long_query_seconds=dict(type="int", default=300),
        idle_in_transaction_seconds=dict(type="int", default=60),
        connections_max_pct=dict(type="float", default=80),
        replication_max_lag_seconds=dict(type="float", default=60),
        freeze_windows=dict(type="list", elements="dict", default=[]),
        maintenance_windows=dict(type="list", elements="dict", default=[]),
        now=dict(type="str"),
        freeze_override=dict(type="bool", default=False),
        freeze_override_reason=dict(type="str", default=""),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    pre = Preflight(module)
    queries = pre.run()
    module.exit_json(changed=False, checks=pre.checks, summary=summarize(pre.checks), facts=pre.facts,
                     queries=queries)


if __name__ == "__main__":
    main()
