"""Statement splitter of pg_migrate (pgops_migrate_sql.split_statements)."""

import pytest

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_migrate_sql import (
    SqlSplitError,
    split_statements,
)


def texts(sql):
    return [s.text for s in split_statements(sql)]


def test_plain_statements_and_trailing_statement_without_semicolon():
    assert texts("SELECT 1;\nSELECT 2;\nSELECT 3") == ["SELECT 1", "SELECT 2", "SELECT 3"]


def test_empty_and_comment_only_pieces_are_dropped():
    assert texts(";;\n-- only a comment\n/* block */;\n  ;") == []
    assert texts("") == []


def test_semicolon_in_string_literal_with_doubled_quotes():
    sql = "INSERT INTO t VALUES ('a;b', 'it''s; fine');SELECT 2;"
    assert texts(sql) == ["INSERT INTO t VALUES ('a;b', 'it''s; fine')", "SELECT 2"]


def test_escape_string_with_backslash_quote():
    sql = r"SELECT E'it\'s; still a string\\';SELECT 2;"
    assert texts(sql) == [r"SELECT E'it\'s; still a string\\'", "SELECT 2"]


def test_backslash_is_literal_in_standard_strings():
    # 'a\' ends the literal (standard_conforming_strings); the ; after it splits.
    assert texts(r"SELECT 'a\';SELECT 2;") == [r"SELECT 'a\'", "SELECT 2"]


def test_identifier_ending_in_e_does_not_start_escape_string():
    assert texts(r"SELECT some_e'x\';SELECT 2;") == [r"SELECT some_e'x\'", "SELECT 2"]


def test_dollar_quotes_plain_and_tagged_with_nested_other_tag():
    sql = ("CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$\nBEGIN\n  PERFORM 'x;';\n"
           "  EXECUTE $q$SELECT 1; SELECT 2$q$;\n  RETURN 1;\nEND\n$fn$;\n"
           "DO $$ BEGIN RAISE NOTICE 'a;b'; END $$;\nSELECT 3;")
    out = split_statements(sql)
    assert len(out) == 3
    assert out[0].text.endswith("$fn$") and "EXECUTE $q$SELECT 1; SELECT 2$q$;" in out[0].text
    assert out[1].text == "DO $$ BEGIN RAISE NOTICE 'a;b'; END $$"
    assert out[2].line == 9


def test_positional_parameter_and_identifier_dollar_are_not_dollar_quotes():
    sql = "PREPARE p AS SELECT $1::int;CREATE TABLE a$b (x int);SELECT 2;"
    assert texts(sql) == ["PREPARE p AS SELECT $1::int", "CREATE TABLE a$b (x int)", "SELECT 2"]


def test_line_and_nested_block_comments():
    sql = ("-- c1; not a split\nSELECT 1 /* outer /* inner; */ still; comment */ + 1;\n"
           "/* multi\nline; */ SELECT 2; -- trailing; comment\n")
    out = split_statements(sql)
    assert [s.line for s in out] == [2, 4]
    assert "inner; */ still; comment */" in out[0].text
    assert "COMMENT" not in out[0].keyword_code and "INNER" not in out[0].keyword_code
    assert out[1].text == "SELECT 2"


def test_quoted_identifier_with_semicolon_and_doubled_quote():
    assert texts('CREATE TABLE "we;ird""name" (id int);SELECT 1') == ['CREATE TABLE "we;ird""name" (id int)',
                                                                      "SELECT 1"]


def test_parentheses_keep_semicolons_together():
    sql = "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2));SELECT 1;"
    assert len(split_statements(sql)) == 2


def test_begin_atomic_function_body():
    sql = ("CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT a + b;\n"
           "  SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END;\nEND;\nSELECT 2;")
    out = split_statements(sql)
    assert len(out) == 2
    assert out[0].text.endswith("END") and out[1].text == "SELECT 2"


def test_plain_begin_end_split_as_statements():
    # Outside CREATE FUNCTION, BEGIN/END are ordinary statements (the file loader rejects them).
    assert texts("BEGIN;\nSELECT 1;\nEND;") == ["BEGIN", "SELECT 1", "END"]


def test_code_masks_literals_and_dollar_bodies_but_keeps_identifiers():
    st = split_statements("SELECT 'DROP TABLE x', $$TRUNCATE y$$, \"Quoted\" FROM t -- DROP TABLE z\n;")[0]
    code = st.keyword_code
    assert "DROP" not in code and "TRUNCATE" not in code
    assert '"QUOTED"' in code and "FROM T" in code


def test_line_numbers_across_multiline_literals_and_comments():
    sql = "SELECT 'a\nb\nc';\n/*\n\n*/\nSELECT $$\n\n$$;\n\n  SELECT 3;"
    assert [s.line for s in split_statements(sql)] == [1, 7, 11]


def test_error_position_maps_to_file_line():
    st = split_statements("\n\nSELECT 1,\n   2,\n   bad_col\nFROM t;")[0]
    assert st.line == 3
    assert st.line_of_position(st.text.index("bad_col") + 1) == 5
    assert st.line_of_position(None) == 3


@pytest.mark.parametrize("sql,msg,line", [
    ("SELECT 1;\nSELECT 'open", "unterminated string literal", 2),
    ("SELECT $$ never closed", "unterminated dollar-quoted string $$", 1),
    ("SELECT $a$ x $b$;", "unterminated dollar-quoted string $a$", 1),
    ("\n/* /* nested */ only one closed", "unterminated /* comment", 2),
    ('SELECT "open', "unterminated quoted identifier", 1),
    ("SELECT 1;\n\\i other.sql\n", "psql meta-command", 2),
])
def test_errors_name_the_line(sql, msg, line):
    with pytest.raises(SqlSplitError) as err:
        split_statements(sql)
    assert msg in str(err.value)
    assert err.value.line == line


def test_excerpt_is_flat_and_bounded():
    st = split_statements("SELECT\n" + ", ".join("c%d" % i for i in range(200)) + " FROM t;")[0]
    assert "\n" not in st.excerpt() and len(st.excerpt()) == 160 and st.excerpt().endswith("...")
