"""Static checks of the sample app's migration files (examples/santri_api/migrations):
naming, V/R pairing, header directives and guard clauses. Real files, no database."""

import os
import re

import pytest

from santri_sample import MIGRATIONS, MIGRATION_RE, header_directives, migration_files


def sql_statements(path):
    """Top-level statements of a file (comments removed; $$ bodies kept whole)."""
    with open(path, encoding="utf-8") as fh:
        text = re.sub(r"--[^\n]*", "", fh.read())
    parts, buf, in_dollar = [], [], False
    for piece in re.split(r"(\$\$|;)", text):
        if piece == "$$":
            in_dollar = not in_dollar
            buf.append(piece)
        elif piece == ";" and not in_dollar:
            stmt = "".join(buf).strip()
            if stmt:
                parts.append(stmt)
            buf = []
        else:
            buf.append(piece)
    tail = "".join(buf).strip()
    if tail:
        parts.append(tail)
    return parts


def all_files():
    return sorted(os.listdir(MIGRATIONS))


def test_every_file_is_named_kind_version_description():
    bad = [name for name in all_files() if not MIGRATION_RE.match(name)]
    assert bad == [], "files not named [VRC]<version>__<desc>.sql: %s" % bad


def test_versions_are_contiguous_and_each_has_a_revert():
    versions = [v for v, _ in migration_files("V")]
    assert versions == list(range(1, len(versions) + 1)), versions
    assert 5 <= len(versions) <= 9
    reverts = {v: os.path.basename(p) for v, p in migration_files("R")}
    for version, path in migration_files("V"):
        assert version in reverts, "V%d has no R%d revert" % (version, version)
        # The revert undoes exactly that file: same description.
        assert reverts[version].split("__", 1)[1] == os.path.basename(path).split("__", 1)[1]
    assert set(v for v, _ in migration_files("C")) <= set(versions)


@pytest.mark.parametrize("kind", ["V", "R"])
def test_no_transaction_files_hold_exactly_one_statement(kind):
    flagged = [p for _, p in migration_files(kind) if header_directives(p).get("no-transaction")]
    if kind == "V":
        assert flagged, "at least one V file must use -- pgops:no-transaction"
    for path in flagged:
        statements = sql_statements(path)
        assert len(statements) == 1, "%s: %d statements in a no-transaction file" % (path, len(statements))
        assert "CONCURRENTLY" in statements[0].upper()


def test_concurrent_index_only_in_no_transaction_files():
    for _, path in migration_files("V") + migration_files("R"):
        text = open(path, encoding="utf-8").read().upper()
        if re.search(r"INDEX\s+CONCURRENTLY", text):
            assert header_directives(path).get("no-transaction"), path


def test_create_and_drop_statements_are_guarded():
    unguarded = []
    for _, path in migration_files("V") + migration_files("R"):
        for stmt in sql_statements(path):
            head = " ".join(stmt.split()).upper()
            if head.startswith("CREATE OR REPLACE") or head.startswith("DO "):
                continue
            if head.startswith("CREATE TRIGGER"):
                # CREATE TRIGGER has no IF NOT EXISTS: it must follow DROP TRIGGER IF EXISTS.
                name = head.split()[2]
                assert "DROP TRIGGER IF EXISTS %s" % name in " ".join(open(path).read().split()).upper(), path
                continue
            if head.startswith("CREATE ") and "IF NOT EXISTS" not in head:
                unguarded.append((os.path.basename(path), head[:60]))
            if head.startswith("DROP ") and "IF EXISTS" not in head:
                unguarded.append((os.path.basename(path), head[:60]))
    assert unguarded == []


def test_enum_types_are_created_only_when_missing():
    path = dict(migration_files("V"))[2]
    text = open(path, encoding="utf-8").read()
    creates = re.findall(r"CREATE TYPE public\.(\w+)", text)
    assert creates == ["jenis_kelamin", "status_santri", "tipe_pesantren"]
    for name in creates:
        assert "t.typname = '%s'" % name in text


def test_directives_sit_in_the_leading_comment_block():
    for name in all_files():
        path = os.path.join(MIGRATIONS, name)
        lines = open(path, encoding="utf-8").read().splitlines()
        first_code = next(i for i, line in enumerate(lines) if line.strip() and not line.strip().startswith("--"))
        late = [line for line in lines[first_code:] if "pgops:" in line]
        assert late == [], "%s: directive after the first statement: %s" % (name, late)


def test_allow_directive_marks_the_index_on_an_earlier_table():
    path = dict(migration_files("V"))[4]
    assert header_directives(path)["allow"] == ["non-concurrent-index"]
    assert "ON public.santri_pribadi" in open(path, encoding="utf-8").read()


def test_matviews_have_unique_indexes():
    path = dict(migration_files("V"))[6]
    text = " ".join(open(path, encoding="utf-8").read().split())
    for mv in ("mv_santri_stats_kabupaten", "mv_pesantren_stats_kabupaten"):
        assert "CREATE MATERIALIZED VIEW IF NOT EXISTS public.%s" % mv in text
        assert re.search(r"CREATE UNIQUE INDEX IF NOT EXISTS \w+ ON public\.%s \(" % mv, text), mv


def test_statement_splitter_keeps_dollar_bodies_whole():
    path = dict(migration_files("V"))[5]
    statements = sql_statements(path)
    assert len(statements) == 6
    assert statements[1].startswith("CREATE OR REPLACE FUNCTION public.fn_santri_skor_sync()")
    assert statements[1].rstrip().endswith("$$")
