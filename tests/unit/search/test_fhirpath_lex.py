"""The shared FHIRPath lexer: token kinds, N1 escapes, dates, comments and lexical errors."""

from __future__ import annotations

import pytest

from fhir_server.search.fhirpath_lex import LexError, Token, literal, name, tokenize, unescape


def kinds(text: str) -> list[tuple[str, str]]:
    return [(t.kind, t.text) for t in tokenize(text)]


def test_path_tokens() -> None:
    assert kinds("Patient.name[0].where(use = 'official')") == [
        ("id", "Patient"), ("op", "."), ("id", "name"), ("op", "["), ("num", "0"),
        ("op", "]"), ("op", "."), ("id", "where"), ("op", "("), ("id", "use"), ("op", "="),
        ("str", "'official'"), ("op", ")")]


def test_operators_are_longest_first() -> None:
    assert [t.text for t in tokenize("a!=b!~c<=d>=e<f>g|h&i+j-k*l/m~n,{}")] == [
        "a", "!=", "b", "!~", "c", "<=", "d", ">=", "e", "<", "f", ">", "g", "|", "h", "&",
        "i", "+", "j", "-", "k", "*", "l", "/", "m", "~", "n", ",", "{", "}"]


def test_numbers() -> None:
    assert kinds("1.5 42 007") == [("num", "1.5"), ("num", "42"), ("num", "007")]
    # ``5.`` is no decimal: the dot starts an invocation
    assert kinds("5.abs()") == [("num", "5"), ("op", "."), ("id", "abs"), ("op", "("),
                                ("op", ")")]
    assert literal(Token("num", "1.5")) == 1.5
    assert literal(Token("num", "007")) == 7


def test_special_and_variables() -> None:
    assert kinds("$this $index $total") == [
        ("special", "$this"), ("special", "$index"), ("special", "$total")]
    assert kinds("%resource %`vs-x` %'us-zip'") == [
        ("var", "%resource"), ("var", "%`vs-x`"), ("var", "%'us-zip'")]
    for bad in ("$thisx", "$foo", "%", "%1"):
        with pytest.raises(LexError):
            tokenize(bad)


@pytest.mark.parametrize(("text", "value"), [
    ("@2015", "2015"), ("@2015-02", "2015-02"), ("@2015-02-04", "2015-02-04"),
    ("@2015-02-04T", "2015-02-04T"), ("@2015-02-04T14", "2015-02-04T14"),
    ("@2015-02-04T14:34:28.123Z", "2015-02-04T14:34:28.123Z"),
    ("@2015-02-04T14:34:28+09:00", "2015-02-04T14:34:28+09:00"),
    ("@T14:34", "T14:34"), ("@T14:34:28.5", "T14:34:28.5"),
])
def test_date_and_time_literals(text: str, value: str) -> None:
    assert tokenize(text) == [Token("date", text)]
    assert literal(Token("date", text)) == value


def test_dates_stop_where_the_grammar_does() -> None:
    assert kinds("@2015-02-04.toString()")[:2] == [("date", "@2015-02-04"), ("op", ".")]
    assert kinds("@2015-1") == [("date", "@2015"), ("op", "-"), ("num", "1")]
    # a zone only follows a time
    assert kinds("@2015-02-04Z")[1] == ("id", "Z")
    for bad in ("@20", "@", "@T", "@x"):
        with pytest.raises(LexError):
            tokenize(bad)


@pytest.mark.parametrize(("escaped", "value"), [
    ("\\'", "'"), ('\\"', '"'), ("\\`", "`"), ("\\\\", "\\"), ("\\/", "/"), ("\\f", "\f"),
    ("\\n", "\n"), ("\\r", "\r"), ("\\t", "\t"), ("\\u00e9", "é"), ("\\u00E9", "é"),
    ("caf\\u00e9 \\'x\\'", "café 'x'"),
])
def test_string_escapes(escaped: str, value: str) -> None:
    (token,) = tokenize(f"'{escaped}'")
    assert token.kind == "str" and literal(token) == value


def test_unknown_escapes_keep_the_character() -> None:
    assert unescape("\\q") == "q"
    assert unescape("\\u12") == "u12"


def test_delimited_identifiers() -> None:
    (token,) = tokenize("`a\\`b c`")
    assert token == Token("id", "`a\\`b c`")
    assert name(token) == "a`b c"
    assert name(Token("id", "`value[x]`")) == "value[x]"
    assert name(Token("id", "plain")) == "plain"
    # the raw text tells the keyword from the name
    assert tokenize("`and`") != tokenize("and")


def test_booleans_are_identifiers_with_a_value() -> None:
    assert tokenize("true") == [Token("id", "true")]
    assert literal(Token("id", "true")) is True
    assert literal(Token("id", "false")) is False
    assert literal(Token("id", "`true`")) is None
    assert literal(Token("id", "name")) is None
    assert literal(Token("op", "=")) is None


def test_whitespace_and_comments_are_skipped() -> None:
    assert kinds(" a\t.\r\n b // to the end of the line\n/* and\nblock */ ") == [
        ("id", "a"), ("op", "."), ("id", "b")]
    assert kinds("a / b") == [("id", "a"), ("op", "/"), ("id", "b")]
    assert tokenize("") == [] and tokenize("  // nothing") == []


def test_strings_may_hold_newlines_and_comment_markers() -> None:
    assert tokenize("'a\n// b'") == [Token("str", "'a\n// b'")]


@pytest.mark.parametrize(("text", "position"), [
    ("Patient.name#", 12), ("'open", 0), ("a `open", 2), ("a\u00a0b", 1), ("\u0663", 0),
    ("a ? b", 2),
])
def test_lex_errors_say_where(text: str, position: int) -> None:
    with pytest.raises(LexError) as error:
        tokenize(text)
    assert error.value.position == position
    assert str(error.value).startswith("unexpected text at ")
