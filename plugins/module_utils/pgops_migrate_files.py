# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration files: names, natural version ordering, checksums, header directives.

  V<version>__<description>.sql   versioned migration (applied once, in version order)
  R<version>__<description>.sql   revert script of that version
  C<version>__<description>.sql   verify script of that version (always rolled back)

Versions are dot- or underscore-separated integers compared numerically
(1 < 2 < 10, 1.1 < 1.2 < 1.10; 1_1 == 1.1).  Checksums are sha256 of the file
bytes with CRLF/CR normalised to LF, so a checkout on Windows does not drift.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_migrate_sql import split_statements

FILE_RE = re.compile(r"^(?P<kind>[VRC])(?P<version>\d+(?:[._]\d+)*)__(?P<desc>[^/\\]+)\.sql$")
VERSION_RE = re.compile(r"^\d+(?:[._]\d+)*$")
TIMEOUT_RE = re.compile(r"^\d+(?:\.\d+)?\s*(?:us|ms|s|min|h|d)?$")
DIRECTIVE_RE = re.compile(r"^--\s*pgops:(?P<name>[a-z_-]+)\s*(?P<value>.*?)\s*$")
KNOWN_DIRECTIVES = ("no-transaction", "allow", "lock_timeout", "statement_timeout")
KINDS = {"V": "versioned", "R": "revert", "C": "verify"}
_TX_CONTROL = re.compile(r"^(BEGIN|COMMIT|ROLLBACK|START TRANSACTION|END|ABORT|SAVEPOINT|RELEASE|PREPARE TRANSACTION)\b")


class MigrationFileError(ValueError):
    """A migration file or directory is not usable; nothing has been run."""


def version_key(version):
    """Sort key of a version string: tuple of ints (1.10 > 1.9, 1_1 == 1.1)."""
    if version is None or not VERSION_RE.match(str(version)):
        raise MigrationFileError("invalid version %r: expected integers separated by '.' or '_' (e.g. 3, 1.10, 2_1)"
                                 % (version,))
    return tuple(int(p) for p in re.split(r"[._]", str(version)))


def normalise_version(version):
    """Canonical text of a version: '01_2' -> '1.2'."""
    return ".".join(str(p) for p in version_key(version))


def compare_versions(a, b):
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)


def checksum_bytes(data):
    """sha256 of the file bytes with line endings normalised to LF."""
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return hashlib.sha256(data).hexdigest()


def parse_directives(text, script="<script>"):
    """Read ``-- pgops:...`` directives from the leading comment/blank lines of a file."""
    found = dict(no_transaction=False, allow=[], lock_timeout=None, statement_timeout=None)
    for lineno, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break  # first line of code ends the header
        m = DIRECTIVE_RE.match(stripped)
        if not m:
            if re.match(r"^--\s*pgops:", stripped):
                raise MigrationFileError("%s line %d: malformed directive %r" % (script, lineno, stripped))
            continue
        name, value = m.group("name"), m.group("value")
        if name not in KNOWN_DIRECTIVES:
            raise MigrationFileError("%s line %d: unknown directive 'pgops:%s' (known: %s)"
                                     % (script, lineno, name, ", ".join(KNOWN_DIRECTIVES)))
        if name == "no-transaction":
            if value:
                raise MigrationFileError("%s line %d: pgops:no-transaction takes no value, got %r"
                                         % (script, lineno, value))
            found["no_transaction"] = True
        elif name == "allow":
            rules = [r.strip() for r in value.replace(" ", ",").split(",") if r.strip()]
            if not rules:
                raise MigrationFileError("%s line %d: pgops:allow needs at least one rule id" % (script, lineno))
            found["allow"].extend(rules)
        else:
            if not TIMEOUT_RE.match(value):
                raise MigrationFileError("%s line %d: pgops:%s expects a duration like 5s, 500ms, 15min; got %r"
                                         % (script, lineno, name, value))
            found[name] = value.replace(" ", "")
    return found


class MigrationFile(object):
    """One V/R/C file with its parsed header and statements."""

    def __init__(self, path, kind, version, description, data):
        self.path = path
        self.script = os.path.basename(path)
        self.kind = kind
        self.type = KINDS[kind]
        self.version = normalise_version(version)
        self.key = version_key(version)
        self.description = description
        self.checksum = checksum_bytes(data)
        try:
            self.text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise MigrationFileError("%s is not valid UTF-8: %s" % (self.script, exc))
        self.directives = parse_directives(self.text, self.script)
        self._statements = None

    @property
    def statements(self):
        if self._statements is None:
            try:
                self._statements = split_statements(self.text)
            except ValueError as exc:
                raise MigrationFileError("%s: %s" % (self.script, exc))
        return self._statements

    @property
    def no_transaction(self):
        return self.directives["no_transaction"]

    def check_runnable(self):
        """Structural rules enforced for every file before anything runs."""
        stmts = self.statements
        if not stmts:
            raise MigrationFileError("%s contains no SQL statement" % self.script)
        for st in stmts:
            m = _TX_CONTROL.match(st.keyword_code)
            if m:
                raise MigrationFileError(
                    "%s line %d: transaction control statement %r is not allowed: the runner wraps each "
                    "file in its own transaction (use -- pgops:no-transaction for statements that cannot "
                    "run in one)" % (self.script, st.line, m.group(1)))
        if self.no_transaction and len(stmts) != 1:
            raise MigrationFileError(
                "%s is marked -- pgops:no-transaction and must contain exactly one statement, found %d "
                "(lines %s): split it into one file per statement"
                % (self.script, len(stmts), ", ".join(str(s.line) for s in stmts)))

    def summary(self):
        return dict(version=self.version, description=self.description, script=self.script,
                    checksum=self.checksum, no_transaction=self.no_transaction)


class MigrationSet(object):
    """All migration files of a directory, indexed by kind and version."""

    def __init__(self, path):
        self.path = path
        self.versioned = []
        self.reverts = {}
        self.verifies = {}
        if not os.path.isdir(path):
            raise MigrationFileError("migration directory %s does not exist or is not a directory" % path)
        bad, seen = [], {}
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if not name.endswith(".sql") or not os.path.isfile(full):
                continue
            m = FILE_RE.match(name)
            if not m:
                bad.append(name)
                continue
            with open(full, "rb") as fh:
                data = fh.read()
            mf = MigrationFile(full, m.group("kind"), m.group("version"),
                               m.group("desc").replace("_", " ").strip(), data)
            ident = (mf.kind, mf.key)
            if ident in seen:
                raise MigrationFileError("%s and %s have the same version %s" % (seen[ident], name, mf.version))
            seen[ident] = name
            if mf.kind == "V":
                self.versioned.append(mf)
            elif mf.kind == "R":
                self.reverts[mf.version] = mf
            else:
                self.verifies[mf.version] = mf
        if bad:
            raise MigrationFileError(
                "file name(s) in %s do not match V|R|C<version>__<description>.sql: %s"
                % (path, ", ".join(bad)))
        self.versioned.sort(key=lambda f: f.key)
        by_version = set(f.version for f in self.versioned)
        orphans = sorted(set(self.reverts) - by_version) + sorted(set(self.verifies) - by_version)
        if orphans:
            raise MigrationFileError("revert/verify script(s) without a V file of the same version: %s"
                                     % ", ".join(sorted(set(orphans), key=version_key)))

    def get(self, version):
        for f in self.versioned:
            if f.version == version:
                return f
        return None
