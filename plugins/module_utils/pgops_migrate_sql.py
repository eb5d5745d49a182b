# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL statement splitter for migration files (pure Python, no server needed).

Splits a script the way psql does: semicolons end statements except inside
string literals ('' escapes, E'' backslash escapes), quoted identifiers,
dollar quotes ($$ / $tag$), -- and nested /* */ comments, parentheses and
SQL-standard function bodies (BEGIN ATOMIC ... END).  Each statement carries
the line it starts on (for error messages) and a "code" form with comments
removed and literal/dollar bodies masked, which the lint rules match against.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# Any non-ASCII character is an identifier character for PostgreSQL. Written as [^\x00-\x7f]
# rather than a \u0080-\uffff range: same matches on the BMP, ~40x cheaper to compile at module start.
_DOLLAR_TAG = re.compile(r"\$((?:[A-Za-z_]|[^\x00-\x7f])(?:[A-Za-z0-9_]|[^\x00-\x7f])*)?\$")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$]|[^\x00-\x7f]")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_ROUTINE_START = re.compile(r"^\s*CREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE)\b", re.I)


class SqlSplitError(ValueError):
    """The script cannot be split (unterminated literal/comment, psql meta-command)."""

    def __init__(self, msg, line):
        super(SqlSplitError, self).__init__("line %d: %s" % (line, msg))
        self.line = line


class Statement(object):
    """One statement: raw text (sent to the server), start line, masked code."""

    __slots__ = ("text", "line", "code")

    def __init__(self, text, line, code):
        self.text = text
        self.line = line
        self.code = code

    @property
    def keyword_code(self):
        """Upper-cased code with whitespace collapsed (what lint rules match)."""
        return re.sub(r"\s+", " ", self.code).strip().upper()

    def excerpt(self, limit=160):
        flat = re.sub(r"\s+", " ", self.text).strip()
        return flat if len(flat) <= limit else flat[:limit - 3] + "..."

    def line_of_position(self, position):
        """File line of a 1-based character position inside ``text`` (PG error position)."""
        try:
            pos = int(position)
        except (TypeError, ValueError):
            return self.line
        return self.line + self.text[:max(pos - 1, 0)].count("\n")

    def __repr__(self):
        return "Statement(line=%d, %r)" % (self.line, self.excerpt(40))


def split_statements(sql):
    """Split ``sql`` into a list of Statement (empty/comment-only pieces dropped)."""
    out = []
    n = len(sql)
    i = 0
    line = 1
    start = None          # index of the first code character of the current statement
    start_line = None
    code = []             # masked code of the current statement
    paren = 0
    atomic_depth = 0      # BEGIN ATOMIC ... END nesting inside CREATE FUNCTION/PROCEDURE

    def begin(idx):
        return (idx, line) if start is None else (start, start_line)

    while i < n:
        ch = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if ch == "\n":
            line += 1
            code.append(ch)
            i += 1
            continue
        if ch.isspace():
            code.append(ch)
            i += 1
            continue
        if ch == "-" and nxt == "-":
            j = sql.find("\n", i)
            j = n if j < 0 else j
            code.append(" ")
            i = j
            continue
        if ch == "/" and nxt == "*":
            depth, j, first_line = 1, i + 2, line
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth += 1
                    j += 2
                elif sql.startswith("*/", j):
                    depth -= 1
                    j += 2
                else:
                    if sql[j] == "\n":
                        line += 1
                    j += 1
            if depth:
                raise SqlSplitError("unterminated /* comment", first_line)
            code.append(" " + "\n" * sql.count("\n", i, j))
            i = j
            continue
        # From here on the character is code: the statement starts here.
        start, start_line = begin(i)
        if ch == "\\" and not "".join(code).strip():
            raise SqlSplitError("psql meta-command %r is not supported in migrations (plain SQL only)"
                                % sql[i:i + 12].split()[0], line)
        if ch == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and not (i > 1 and _IDENT_CHAR.match(sql[i - 2]))
            j, first_line = i + 1, line
            while True:
                if j >= n:
                    raise SqlSplitError("unterminated string literal", first_line)
                c = sql[j]
                if c == "\n":
                    line += 1
                if escapes and c == "\\":
                    if j + 1 < n and sql[j + 1] == "\n":
                        line += 1
                    j += 2
                    continue
                if c == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            code.append("''")
            i = j + 1
            continue
        if ch == '"':
            j, first_line = i + 1, line
            while True:
                if j >= n:
                    raise SqlSplitError("unterminated quoted identifier", first_line)
                if sql[j] == '"':
                    if j + 1 < n and sql[j + 1] == '"':
                        j += 2
                        continue
                    break
                if sql[j] == "\n":
                    line += 1
                j += 1
            code.append(sql[i:j + 1])
            i = j + 1
            continue
        if ch == "$" and not (i > 0 and _IDENT_CHAR.match(sql[i - 1])):
            m = _DOLLAR_TAG.match(sql, i)
            if m:
                tag = m.group(0)
                end = sql.find(tag, m.end())
                if end < 0:
                    raise SqlSplitError("unterminated dollar-quoted string %s" % tag, line)
                line += sql.count("\n", i, end + len(tag))
                code.append("$$ $$")
                i = end + len(tag)
                continue
        if ch == "(":
            paren += 1
        elif ch == ")":
            paren = max(paren - 1, 0)
        elif ch == ";" and paren == 0 and atomic_depth == 0:
            text = sql[start:i].rstrip()
            if text:  # a lone ';' is an empty statement
                out.append(Statement(text, start_line, "".join(code)))
            start = start_line = None
            code = []
            i += 1
            continue
        if ch.isalpha() or ch == "_":
            m = _WORD.match(sql, i)
            word = m.group(0).upper()
            if word in ("BEGIN", "CASE", "END") and _ROUTINE_START.match("".join(code)):
                if word == "BEGIN" and re.match(r"BEGIN\s+ATOMIC\b", sql[i:i + 40], re.I):
                    atomic_depth += 1
                elif word == "CASE" and atomic_depth:
                    atomic_depth += 1
                elif word == "END" and atomic_depth:
                    atomic_depth -= 1
            code.append(m.group(0))
            i = m.end()
            continue
        code.append(ch)
        i += 1
    if start is not None:
        text = sql[start:].rstrip()
        if text:
            out.append(Statement(text, start_line, "".join(code)))
    return out
