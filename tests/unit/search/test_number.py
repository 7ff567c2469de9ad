"""Number index rows and number search values parsed, without a database."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_server.errors import BadRequest
from fhir_server.search.base import IndexContext, Node, ParseContext
from fhir_server.search.number import NUMBER, NumberValue, approximate, parse_number

CTX = IndexContext()
PARSE = ParseContext()


@pytest.mark.parametrize(("text", "low", "high"), [
    ("100", "99.5", "100.5"),
    ("100.00", "99.995", "100.005"),
    ("1e2", "50", "150"),          # one significant figure (the R4 table's [95, 105) is a typo)
    ("1.00e2", "99.5", "100.5"),   # three, like 100
    ("5.40e-3", "0.005395", "0.005405"),
    ("0.001", "0.0005", "0.0015"),
    ("-5", "-5.5", "-4.5"),
    ("0", "-0.5", "0.5"),
    ("2.0", "1.95", "2.05"),
])
def test_implicit_precision(text: str, low: str, high: str) -> None:
    number = parse_number(text)
    assert (number.low, number.high) == (Decimal(low), Decimal(high))
    assert number.value == Decimal(text)


@pytest.mark.parametrize("text", ["", "abc", "1,5", "NaN", "Infinity", "1e", "--1", "0x10",
                                  "1" * 101, "1e5000"])
def test_malformed_numbers(text: str) -> None:
    with pytest.raises(ValueError):
        parse_number(text)


@pytest.mark.parametrize("value", ["abc", "gt", "GT100", "100mg", "ge1,5"])
def test_malformed_search_value_is_bad_request(value: str) -> None:
    with pytest.raises(BadRequest, match="number"):
        NUMBER.parse(1, None, value, PARSE)


@pytest.mark.parametrize("modifier", ["missingx", "exact", "not"])
def test_modifiers_are_rejected(modifier: str) -> None:
    assert frozenset() == NUMBER.modifiers
    with pytest.raises(BadRequest, match=f":{modifier}"):
        NUMBER.parse(1, modifier, "1", PARSE)


def test_rows() -> None:
    nodes = [
        Node(2, "integer"), Node(0.1, "decimal"), Node(Decimal("1.50"), "decimal"),
        Node("7", "integer"), Node(True, "boolean"), Node("first", "string"),
        Node({"low": {"value": 1}, "high": {"value": 3.5}}, "Range"),
        Node({"low": {"value": 1}}, "Range"), Node({"high": {"value": 3}}, "Range"),
        Node({}, "Range"), Node(2, "positiveInt"), Node(float("nan"), "decimal"),
    ]
    assert NUMBER.rows(5, nodes, CTX) == [
        (5, "2", "2"), (5, "0.1", "0.1"), (5, "1.50", "1.50"), (5, "7", "7"),
        (5, "1", "3.5"), (5, "1", "Infinity"), (5, "-Infinity", "3"),
    ]


def test_search_values() -> None:
    value = NUMBER.parse(9, None, "100", PARSE)
    assert value == NumberValue("eq", parse_number("100"))
    assert NUMBER.parse(9, None, "ge5.40e-3", PARSE) == NumberValue("ge", parse_number("5.40e-3"))
    assert NUMBER.parse(9, None, " 1 ", PARSE) == NumberValue("eq", parse_number("1"))


def test_approximate() -> None:
    # ap: 10 % of the value, never narrower than its precision.
    assert approximate(parse_number("100")) == (Decimal("90.0"), Decimal("110.0"))
    assert approximate(parse_number("0")) == (Decimal("-0.5"), Decimal("0.5"))
    assert approximate(parse_number("-5")) == (Decimal("-5.5"), Decimal("-4.5"))


def _sig_range(text: str) -> tuple[Fraction, Fraction]:
    # Independent reading of the rule: half a unit in the last written digit.
    mantissa, _, exp = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    unit = Fraction(10) ** (int(exp or 0) - decimals)
    value = Fraction(mantissa) * Fraction(10) ** int(exp or 0)
    return value - unit / 2, value + unit / 2


@settings(database=None)
@given(st.integers(min_value=-10**6, max_value=10**6), st.integers(min_value=0, max_value=4),
       st.integers(min_value=-3, max_value=3), st.booleans())
def test_precision_property(digits: int, decimals: int, exponent: int, use_exp: bool) -> None:
    mantissa = str(Fraction(digits, 10**decimals)) if decimals == 0 else (
        f"{'-' if digits < 0 else ''}{abs(digits) // 10**decimals}."
        f"{abs(digits) % 10**decimals:0{decimals}d}")
    text = f"{mantissa}e{exponent}" if use_exp else mantissa
    number = parse_number(text)
    low, high = _sig_range(text)
    assert (Fraction(number.low), Fraction(number.high)) == (low, high)
