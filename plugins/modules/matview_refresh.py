#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: matview_refresh
short_description: Refresh PostgreSQL materialized views in dependency order, concurrently where legal
version_added: 0.1.0
description:
  - Refreshes materialized views of one database in dependency order. Dependencies are read from
    C(pg_rewrite)/C(pg_depend) and followed through plain views, so a view that selects from a plain view
    over another materialized view is refreshed after that view.
  - Uses C(REFRESH MATERIALIZED VIEW CONCURRENTLY) only where PostgreSQL allows it (the view is populated
    and has a valid, ready, immediate btree unique index on plain columns without WHERE) and says per view
    why it fell back to a plain refresh.
  - Every refresh runs in its own transaction with its own C(lock_timeout) and C(statement_timeout);
    lock timeouts (SQLSTATE 55P03) are retried with exponential back-off.
  - In check mode nothing is refreshed; the result holds the plan (order, method, fallback reason).
options:
  names:
    description:
      - Materialized views to refresh, C(view) (schema C(public)) or C(schema.view); double quotes keep case.
      - Mutually exclusive with O(schema). When neither is given, every materialized view of the database
        is refreshed.
    type: list
    elements: str
  schema:
    description: Refresh every materialized view of this schema.
    type: str
  include_dependants:
    description: Also refresh every materialized view that (transitively) depends on O(names).
    type: bool
    default: false
  concurrently:
    description:
      - C(auto) refreshes concurrently where legal and falls back to a plain refresh elsewhere (reason in
        RV(views[].fallback_reason)).
      - C(always) requires a concurrent refresh for every view; a view where it is not legal fails the
        module before anything is refreshed (same as C(auto) with O(strict=true)).
      - C(never) always runs a plain refresh (blocks readers of the view while it runs).
    type: str
    choices: [auto, always, never]
    default: auto
  strict:
    description: Fail before refreshing anything when a view would need a fallback to a plain refresh.
    type: bool
    default: false
  lock_timeout:
    description: C(lock_timeout) for each refresh (PostgreSQL interval syntax, C(0) disables).
    type: str
    default: 5s
  statement_timeout:
    description: C(statement_timeout) for each refresh (C(0) disables).
    type: str
    default: '0'
  retries:
    description: How many times to retry a refresh that hit the lock timeout.
    type: int
    default: 3
  retry_delay:
    description: Seconds to wait after the first lock timeout; doubled after each further one (capped at 60).
    type: float
    default: 1.0
  view_options:
    description:
      - Per-view overrides, keyed by view name as in O(names). Allowed keys C(lock_timeout),
        C(statement_timeout), C(retries), C(retry_delay).
    type: dict
    default: {}
  analyze:
    description: Run C(ANALYZE) on each view after its refresh (inside C(VACUUM (ANALYZE)) when O(vacuum=true)).
    type: bool
    default: false
  vacuum:
    description: Run C(VACUUM) after a concurrent refresh (which leaves dead tuples behind). Runs outside a transaction.
    type: bool
    default: false
  count_rows:
    description: Count rows before and after each refresh (C(count(*)), costs a scan of the view).
    type: bool
    default: true
extends_documentation_fragment:
  - pgops.deploy.postgres
attributes:
  check_mode:
    support: full
author:
  - pgops.deploy maintainers
"""

EXAMPLES = r"""
- name: Refresh every materialized view of the app database, concurrently where legal
  pgops.deploy.matview_refresh:
    login_db: santri

- name: Refresh two views and everything built on them, never blocking readers
  pgops.deploy.matview_refresh:
    login_db: santri
    names: [gis.choropleth_stats, public.daily_totals]
    include_dependants: true
    concurrently: always
    lock_timeout: 2s
    retries: 5
    view_options:
      gis.choropleth_stats:
        statement_timeout: 10min
    vacuum: true
    analyze: true

- name: Show what would be refreshed and how
  pgops.deploy.matview_refresh:
    login_db: santri
    schema: reporting
  check_mode: true
  register: plan
"""

RETURN = r"""
views:
  description: One entry per targeted view, in refresh order.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Schema-qualified view name., type: str, sample: public.mv_sales}
    order:
      description: Position in the refresh order (1-based).
      type: int
    depends_on:
      description: Targeted views refreshed before this one.
      type: list
      elements: str
    method:
      description: C(concurrent), C(plain), C(skipped) (check mode or not reached) or C(failed).
      type: str
    planned_method:
      description: Method chosen by the plan.
      type: str
    fallback_reason:
      description: Why a concurrent refresh was not possible (null when not needed).
      type: str
    unique_index:
      description: Unique index that makes the concurrent refresh legal.
      type: str
    duration_ms:
      description: Wall time of the refresh including retries.
      type: float
    rows_before:
      description: Rows before the refresh (null when the view was not populated).
      type: int
    rows_after:
      description: Rows after the refresh.
      type: int
    attempts:
      description: Refresh attempts (more than 1 after lock timeouts).
      type: int
    lock_timeout:
      description: Effective lock_timeout.
      type: str
    statement_timeout:
      description: Effective statement_timeout.
      type: str
    maintenance:
      description: VACUUM / ANALYZE statements run afterwards.
      type: list
      elements: str
order:
  description: View names in refresh order.
  returned: always
  type: list
  elements: str
queries:
  description: SQL statements executed, in order.
  returned: always
  type: list
  elements: str
warnings_cycle:
  description: Views found on a dependency cycle (should never happen; refreshed by name order).
  returned: when a cycle was found
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_matview import (
    MatviewCatalog, MatviewError, Refresher, parse_name, plan_methods, display_name)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_postgres import (
    PgSession, ensure_driver, postgres_common_argument_spec)

VIEW_OPTION_KEYS = ("lock_timeout", "statement_timeout", "retries", "retry_delay")


def normalise_view_options(raw):
    """Key view_options by display name; reject unknown keys with a clear message."""
    out = {}
    for key, opts in (raw or {}).items():
        if not isinstance(opts, dict):
            raise MatviewError("view_options[%r] must be a dict, got %s" % (key, type(opts).__name__))
        bad = sorted(set(opts) - set(VIEW_OPTION_KEYS))
        if bad:
            raise MatviewError("view_options[%r]: unknown key(s) %s (allowed: %s)"
                               % (key, ", ".join(bad), ", ".join(VIEW_OPTION_KEYS)))
        out[display_name(*parse_name(key))] = opts
    return out


def validate_timeouts(session, views):
    """Let the server parse every timeout before anything is refreshed (is_local: no lasting effect)."""
    seen = set()
    for v in views:
        for setting in ("lock_timeout", "statement_timeout"):
            value = v[setting]
            if (setting, value) in seen:
                continue
            seen.add((setting, value))
            try:
                session.scalar("SELECT pg_catalog.set_config(%s, %s, true)", (setting, value), record=False)
            except Exception as exc:
                raise MatviewError("invalid %s %r for %s: %s" % (setting, value, v["name"], str(exc).strip()))


def public_view(v):
    keep = ("name", "order", "depends_on", "method", "planned_method", "fallback_reason", "unique_index",
            "duration_ms", "rows_before", "rows_after", "attempts", "lock_timeout", "statement_timeout",
            "maintenance", "populated")
    return dict((k, v.get(k)) for k in keep)


def main():
    spec = postgres_common_argument_spec()
    spec.update(
        names=dict(type="list", elements="str"),
        schema=dict(type="str"),
        include_dependants=dict(type="bool", default=False),
        concurrently=dict(type="str", default="auto", choices=["auto", "always", "never"]),
        strict=dict(type="bool", default=False),
        lock_timeout=dict(type="str", default="5s"),
        statement_timeout=dict(type="str", default="0"),
        retries=dict(type="int", default=3),
        retry_delay=dict(type="float", default=1.0),
        view_options=dict(type="dict", default={}),
        analyze=dict(type="bool", default=False),
        vacuum=dict(type="bool", default=False),
        count_rows=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           mutually_exclusive=[["names", "schema"]])
    ensure_driver(module)
    p = module.params
    if p["retries"] < 0:
        module.fail_json(msg="retries must be >= 0, got %d" % p["retries"])
    if p["retry_delay"] < 0:
        module.fail_json(msg="retry_delay must be >= 0, got %s" % p["retry_delay"])
    if p["include_dependants"] and not p["names"]:
        module.fail_json(msg="include_dependants=true needs names (without names every view is refreshed anyway)")

    session = PgSession(module, autocommit=True)
    result = dict(changed=False, views=[], order=[], queries=session.queries)
    try:
        view_options = normalise_view_options(p["view_options"])
        catalog = MatviewCatalog(session)
        oids = catalog.resolve(p["names"], p["schema"], p["include_dependants"])
        views, cyclic = catalog.plan(oids)
        if cyclic:
            result["warnings_cycle"] = cyclic
            module.warn("dependency cycle between %s: refreshed in name order" % ", ".join(cyclic))
        unknown_opts = sorted(set(view_options) - set(v["name"] for v in views))
        if unknown_opts:
            raise MatviewError("view_options names view(s) that are not targeted: %s (targeted: %s)"
                               % (", ".join(unknown_opts), ", ".join(v["name"] for v in views) or "none"))
        fallbacks = plan_methods(views, p["concurrently"])
        if fallbacks and (p["strict"] or p["concurrently"] == "always"):
            raise MatviewError(
                "Concurrent refresh is not possible for %d view(s), nothing was refreshed (%s): %s"
                % (len(fallbacks), "strict=true" if p["strict"] else "concurrently=always",
                   "; ".join("%s: %s" % (v["name"], v["fallback_reason"]) for v in fallbacks)))
        for v in views:
            opts = view_options.get(v["name"], {})
            v["planned_method"] = v["method"]
            v["lock_timeout"] = str(opts.get("lock_timeout", p["lock_timeout"]))
            v["statement_timeout"] = str(opts.get("statement_timeout", p["statement_timeout"]))
            v["_retries"] = int(opts.get("retries", p["retries"]))
            v["_retry_delay"] = float(opts.get("retry_delay", p["retry_delay"]))
            v.update(duration_ms=None, rows_before=None, rows_after=None, attempts=0, maintenance=[])
        validate_timeouts(session, views)
        result["order"] = [v["name"] for v in views]
        result["views"] = views
        if module.check_mode:
            result["changed"] = bool(views)
            for v in views:
                v["method"] = "skipped"
            result["views"] = [public_view(v) for v in views]
            result["msg"] = "check mode: would refresh %d view(s) in this order: %s" % (
                len(views), ", ".join("%s (%s)" % (v["name"], v["planned_method"]) for v in views) or "none")
            module.exit_json(**result)
        refresher = Refresher(session, count_rows=p["count_rows"])
        for v in views:
            v["method"] = "skipped"
        for v in views:
            v["method"] = v["planned_method"]
            try:
                refresher.refresh(v, v["lock_timeout"], v["statement_timeout"], v["_retries"], v["_retry_delay"],
                                  analyze=p["analyze"], vacuum=p["vacuum"])
            except MatviewError:
                v["method"] = "failed"
                raise
            result["changed"] = True
        result["views"] = [public_view(v) for v in views]
        result["msg"] = "refreshed %d view(s): %s" % (len(views), ", ".join(
            "%s (%s, %.0f ms)" % (v["name"], v["method"], v["duration_ms"]) for v in views) or "none")
    except MatviewError as exc:
        result["views"] = [public_view(v) for v in result["views"]]
        session.close()
        module.fail_json(msg=str(exc), **result)
    except Exception as exc:  # driver errors: report with the SQL run so far
        result["views"] = [public_view(v) for v in result["views"]]
        session.close()
        module.fail_json(msg="matview_refresh failed: %s" % str(exc).strip(), **result)
    session.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
