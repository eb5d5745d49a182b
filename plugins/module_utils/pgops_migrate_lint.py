# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dangerous-operation rules for migrations (after squawk / strong_migrations).

Rules match the masked statement code (comments removed, literals and dollar
bodies blanked), so text inside strings or DO bodies never triggers a rule.
Each finding names the rule, file, line, statement excerpt and a safer way.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

ERROR = "error"
WARNING = "warning"

# id -> (severity, why it hurts, safer alternative)
RULES = {
    "drop-table": (ERROR, "DROP TABLE destroys data and breaks the release still running",
                   "stop using the table in one release, drop it in a later one after a verified backup"),
    "drop-column": (ERROR, "dropping a column breaks the app version still running (SELECT *, ORMs)",
                    "stop reading/writing the column first, drop it in a later release"),
    "drop-schema": (ERROR, "DROP SCHEMA destroys every object in it",
                    "drop the objects explicitly in a later release after a verified backup"),
    "drop-database": (ERROR, "DROP DATABASE in a migration destroys everything",
                      "never drop databases from migrations; do it by hand after a backup"),
    "truncate": (ERROR, "TRUNCATE deletes every row under an ACCESS EXCLUSIVE lock",
                 "DELETE in batches, or move data to an archive table first"),
    "rename": (ERROR, "renaming a table/column breaks the app version still running",
               "add the new name (column/view), write both, switch readers, drop the old name later"),
    "alter-column-type": (ERROR, "changing a column type rewrites the table under ACCESS EXCLUSIVE",
                          "add a new column, backfill in batches, switch, drop the old column later"),
    "set-not-null": (ERROR, "SET NOT NULL scans the whole table under ACCESS EXCLUSIVE",
                     "ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT; then SET NOT NULL "
                     "(PostgreSQL 12+ skips the scan)"),
    "add-column-not-null-no-default": (
        ERROR, "ADD COLUMN NOT NULL without a default fails on a non-empty table; a volatile default "
        "(random(), clock_timestamp(), gen_random_uuid(), serial) rewrites the table",
        "add the column nullable (or with a constant default), backfill in batches, then add the constraint"),
    "create-index-not-concurrently": (
        ERROR, "CREATE INDEX blocks writes to an existing table for the whole build",
        "CREATE INDEX CONCURRENTLY in its own file marked -- pgops:no-transaction"),
    "add-constraint-without-not-valid": (
        ERROR, "adding a FOREIGN KEY/CHECK validates every row while holding a blocking lock",
        "ADD CONSTRAINT ... NOT VALID, then ALTER TABLE ... VALIDATE CONSTRAINT in a later statement/file"),
    "missing-if-exists": (WARNING, "the statement is not re-runnable",
                          "use IF NOT EXISTS on CREATE TABLE/INDEX/EXTENSION and IF EXISTS on DROP"),
    "vacuum-full": (ERROR, "VACUUM FULL rewrites the table under ACCESS EXCLUSIVE",
                    "plain VACUUM, or pg_repack outside the deploy"),
    "lock-table": (ERROR, "LOCK TABLE blocks every query on the table until the migration commits",
                   "rely on the statement's own lock; keep migrations short"),
    "concurrently-in-transaction": (
        ERROR, "CONCURRENTLY cannot run inside a transaction block",
        "put the statement alone in a file marked -- pgops:no-transaction"),
}

# Older/alternative spellings accepted in allow lists.
ALIASES = {
    "non-concurrent-index": "create-index-not-concurrently",
    "create-index-non-concurrently": "create-index-not-concurrently",
    "renaming-column": "rename",
    "renaming-table": "rename",
    "changing-column-type": "alter-column-type",
}

_NAME = r'(?:"(?:[^"]|"")+"|[A-Z_][A-Z0-9_$]*)'
_QNAME = r"(?:%s\s*\.\s*)?%s" % (_NAME, _NAME)
_ALTER_TABLE = re.compile(r"^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?(?P<table>%s)\s*(?P<rest>.*)$" % _QNAME, re.S)
_CREATE_TABLE = re.compile(
    r"^CREATE (?:(?:GLOBAL |LOCAL )?(?:TEMP|TEMPORARY) |UNLOGGED )?TABLE (?:IF NOT EXISTS )?(?P<table>%s)" % _QNAME)
_CREATE_MATVIEW = re.compile(r"^CREATE MATERIALIZED VIEW (?:IF NOT EXISTS )?(?P<table>%s)" % _QNAME)
_CREATE_INDEX = re.compile(
    r"^CREATE (?P<unique>UNIQUE )?INDEX (?P<conc>CONCURRENTLY )?(?P<ine>IF NOT EXISTS )?(?:(?P<name>%s) )?"
    r"ON (?:ONLY )?(?P<table>%s)" % (_NAME, _QNAME))
_VOLATILE = re.compile(r"\b(RANDOM|CLOCK_TIMESTAMP|TIMEOFDAY|GEN_RANDOM_UUID|UUID_GENERATE_V[14]\w*|NEXTVAL|"
                       r"TXID_CURRENT|STATEMENT_TIMESTAMP)\s*\(")
_SERIAL = re.compile(r"\b(SMALLSERIAL|SERIAL|BIGSERIAL|SERIAL[248])\b")


def canonical_rule(rule):
    rule = rule.strip().lower()
    return ALIASES.get(rule, rule)


def unknown_rules(rules):
    return sorted(set(r for r in rules if canonical_rule(r) not in RULES))


def table_name(raw):
    """Unqualified, unquoted, lower-cased name: the key used to spot tables created in the same file."""
    last = re.split(r'\s*\.\s*(?=(?:"|[A-Z_]))', raw.strip())[-1]
    if last.startswith('"'):
        return last[1:-1].replace('""', '"')
    return last.lower()


def _split_actions(rest):
    """Top-level comma-separated actions of an ALTER TABLE (commas inside parentheses kept)."""
    parts, depth, cur = [], 0, []
    for ch in rest:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


def _alter_table_findings(action):
    """Rule ids hit by one ALTER TABLE action (upper-cased, masked)."""
    hits = []
    if re.match(r"^RENAME (?:COLUMN )?(?!CONSTRAINT\b)", action):
        hits.append("rename")
    if re.match(r"^DROP (?:COLUMN )?(?!CONSTRAINT\b|DEFAULT\b|NOT NULL\b|IDENTITY\b|EXPRESSION\b)", action):
        hits.append("drop-column")
        if not re.match(r"^DROP (?:COLUMN )?IF EXISTS\b", action):
            hits.append("missing-if-exists")
    if re.match(r"^ALTER (?:COLUMN )?%s (?:SET DATA )?TYPE\b" % _NAME, action):
        hits.append("alter-column-type")
    if re.match(r"^ALTER (?:COLUMN )?%s SET NOT NULL\b" % _NAME, action):
        hits.append("set-not-null")
    m = re.match(r"^ADD (?:COLUMN )?(?:IF NOT EXISTS )?(?!CONSTRAINT\b|FOREIGN\b|CHECK\b|PRIMARY\b|UNIQUE\b|EXCLUDE\b)"
                 r"%s (?P<def>.*)$" % _NAME, action, re.S)
    if m:
        coldef = m.group("def")
        has_default = re.search(r"\bDEFAULT\b", coldef) or re.search(r"\bGENERATED\b", coldef)
        if (re.search(r"\bNOT NULL\b", coldef) and not has_default) or _VOLATILE.search(coldef) \
                or _SERIAL.search(coldef):
            hits.append("add-column-not-null-no-default")
    if re.match(r"^ADD (?:CONSTRAINT %s )?(?:FOREIGN KEY|CHECK)\b" % _NAME, action) \
            and not re.search(r"\bNOT VALID\b", action):
        hits.append("add-constraint-without-not-valid")
    return hits


def statement_rules(code, transactional, created):
    """Rule ids hit by one statement.  ``created``: tables created earlier in the same file."""
    c = re.sub(r"\s+", " ", code).strip().upper()
    hits = []
    m = re.match(r"^DROP (?P<what>TABLE|SCHEMA|DATABASE|INDEX|VIEW|MATERIALIZED VIEW|EXTENSION|FUNCTION|"
                 r"PROCEDURE|TRIGGER|TYPE|SEQUENCE|POLICY|RULE|DOMAIN|AGGREGATE|ROLE|USER|"
                 r"FOREIGN TABLE|PUBLICATION|SUBSCRIPTION|OPERATOR|CAST|COLLATION)\b(?P<rest>.*)$", c)
    if m:
        what = m.group("what")
        if what in ("TABLE", "SCHEMA", "DATABASE"):
            hits.append("drop-" + what.lower())
        rest = m.group("rest").strip()
        if rest.startswith("CONCURRENTLY "):
            rest = rest[len("CONCURRENTLY "):]
            if transactional:
                hits.append("concurrently-in-transaction")
        if not rest.startswith("IF EXISTS"):
            hits.append("missing-if-exists")
    if re.match(r"^TRUNCATE\b", c):
        hits.append("truncate")
    if re.match(r"^VACUUM\b", c) and (re.match(r"^VACUUM FULL\b", c) or re.match(r"^VACUUM \([^)]*\bFULL\b", c)):
        hits.append("vacuum-full")
    if re.match(r"^LOCK\b", c):
        hits.append("lock-table")
    if re.match(r"^(?:CREATE|REINDEX)\b.*\bCONCURRENTLY\b", c) and transactional:
        hits.append("concurrently-in-transaction")
    m = _CREATE_TABLE.match(c) or _CREATE_MATVIEW.match(c)
    if m and "IF NOT EXISTS" not in c[:m.end()]:
        hits.append("missing-if-exists")
    if re.match(r"^CREATE EXTENSION\b", c) and not re.match(r"^CREATE EXTENSION IF NOT EXISTS\b", c):
        hits.append("missing-if-exists")
    m = _CREATE_INDEX.match(c)
    if m:
        if not m.group("ine"):
            hits.append("missing-if-exists")
        if not m.group("conc") and table_name(m.group("table")) not in created:
            hits.append("create-index-not-concurrently")
    m = _ALTER_TABLE.match(c)
    if m:
        table_is_new = table_name(m.group("table")) in created
        rest = m.group("rest")
        if re.match(r"^RENAME (?:TO|COLUMN|(?!CONSTRAINT\b))", rest):
            if not table_is_new:
                hits.append("rename")
        else:
            for action in _split_actions(rest):
                for rule in _alter_table_findings(action):
                    if table_is_new and rule not in ("missing-if-exists",):
                        continue
                    hits.append(rule)
    # Seen only after the checks: a statement that creates a table makes later ones on it safe.
    m = _CREATE_TABLE.match(c) or _CREATE_MATVIEW.match(c)
    if m:
        created.add(table_name(m.group("table")))
    out = []
    for h in hits:
        if h not in out:
            out.append(h)
    return out


def lint_file(mf, allow_rules=()):
    """Findings of one MigrationFile (dicts, ordered by line)."""
    allowed = set(canonical_rule(r) for r in mf.directives["allow"]) | set(canonical_rule(r) for r in allow_rules)
    created = set()
    findings = []
    for st in mf.statements:
        for rule in statement_rules(st.code, not mf.no_transaction, created):
            severity, why, safer = RULES[rule]
            findings.append(dict(
                rule=rule, severity=severity, file=mf.script, version=mf.version, line=st.line,
                statement=st.excerpt(), message="%s; safer: %s" % (why, safer),
                allowed=rule in allowed))
    return findings


def blocking(findings, mode):
    """Findings that stop the run: errors not allowed, when lint mode is 'error'."""
    if mode != "error":
        return []
    return [f for f in findings if f["severity"] == ERROR and not f["allowed"]]


def tables_touched(mf):
    """Tables named by DDL/DML statements of a file (for row counts and ANALYZE)."""
    names = []
    pattern = re.compile(
        r"^(?:ALTER TABLE (?:IF EXISTS )?(?:ONLY )?|INSERT INTO |UPDATE (?:ONLY )?|DELETE FROM (?:ONLY )?|"
        r"TRUNCATE (?:TABLE )?(?:ONLY )?|CREATE (?:UNIQUE )?INDEX (?:CONCURRENTLY )?(?:IF NOT EXISTS )?"
        r"(?:%s )?ON (?:ONLY )?|LOCK (?:TABLE )?(?:ONLY )?|DROP TABLE (?:IF EXISTS )?)(?P<t>%s)" % (_NAME, _QNAME),
        re.I)
    for st in mf.statements:
        c = re.sub(r"\s+", " ", st.code).strip()
        m = pattern.match(c)
        if m:
            t = re.sub(r"\s*\.\s*", ".", m.group("t"))
            if t not in names:
                names.append(t)
    return names
