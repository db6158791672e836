"""The push query language: the same answer for every row, whatever store it came from."""

from __future__ import annotations

import heapq
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncline.push.query import (
    QueryError,
    parse_assignment,
    parse_condition,
    parse_ordering,
    parse_update,
    resolve,
)

SEED = (
    "UPDATE accounts SET InvoiceAttachmentType = 1 "
    "WHERE InvoiceAttachmentType = 3 AND status = 'C' LIMIT 100"
)
SEED_ORDERED = (
    "UPDATE accounts SET InvoiceAttachmentType = 1 "
    "WHERE InvoiceAttachmentType = 3 AND status = 'C' ORDER BY Modified DESC LIMIT 100"
)

ACCOUNT: dict[str, Any] = {
    "ID": "4a5b",
    "Code": "17",
    "Name": "Acme Bakery",
    "Status": "C",
    "InvoiceAttachmentType": 3,
    "Price": 9.75,
    "Exact": Decimal("0.1"),
    "Blocked": False,
    "Tags": ["vip", "food"],
    "Address": {"City": "Ghent", "Geo": {"Lat": 51.05}},
    "Note": None,
}


def truth(text: str, row: dict[str, Any] | None = None) -> bool | None:
    """TRUE, FALSE or NULL of a condition, seen only through the public API."""
    row = ACCOUNT if row is None else row
    if parse_condition(text)(row):
        return True
    if parse_condition(f"NOT ({text})")(row):
        return False
    return None


def value(expression: str, row: dict[str, Any] | None = None) -> Any:
    """What an expression computes, through ``UPDATE … SET x = <expression>``."""
    statement = parse_update(f"UPDATE t SET x = {expression}")
    return statement.assignments[0].value(ACCOUNT if row is None else row)


def refused(parse: Any, text: str) -> str:
    with pytest.raises(QueryError) as caught:
        parse(text)
    return str(caught.value)


# --------------------------------------------------------------------------- names


def test_resolve_prefers_the_exact_key() -> None:
    row = {"status": "lower", "Status": "upper", "STATUS": "shout"}
    assert resolve(row, ("Status",)) == "upper"


def test_resolve_falls_back_to_the_one_key_equal_ignoring_case() -> None:
    assert resolve({"Status": "C"}, ("status",)) == "C"
    assert resolve({"Status": "C"}, ("STATUS",)) == "C"


def test_resolve_refuses_two_keys_equal_ignoring_case_and_names_both() -> None:
    with pytest.raises(QueryError) as caught:
        resolve({"Status": "C", "STATUS": "D"}, ("status",))
    assert '"Status"' in str(caught.value)
    assert '"STATUS"' in str(caught.value)


def test_resolve_missing_name_is_null() -> None:
    assert resolve({"Status": "C"}, ("Missing",)) is None


def test_resolve_walks_nested_objects_with_the_same_rule_per_level() -> None:
    assert resolve(ACCOUNT, ("address", "city")) == "Ghent"
    assert resolve(ACCOUNT, ("address", "geo", "lat")) == 51.05


def test_resolve_missing_or_scalar_level_is_null() -> None:
    assert resolve(ACCOUNT, ("address", "zip", "code")) is None
    assert resolve(ACCOUNT, ("name", "first")) is None
    assert resolve(ACCOUNT, ("tags", "0")) is None


def test_condition_finds_a_field_written_in_another_case() -> None:
    assert truth("status = 'C'") is True
    assert truth("STATUS = 'C'") is True


def test_condition_reports_ambiguity_with_its_text() -> None:
    condition = parse_condition("status = 'C'")
    with pytest.raises(QueryError) as caught:
        condition({"Status": "C", "STATUS": "C"})
    message = str(caught.value)
    assert '"Status"' in message
    assert '"STATUS"' in message
    assert "status = 'C'" in message


def test_case_insensitive_lookup_notices_a_new_ambiguity_in_a_later_row() -> None:
    condition = parse_condition("status = 'C'")
    assert condition({"Status": "C", "Other": 1})
    assert condition({"Status": "C", "Other": 1})
    with pytest.raises(QueryError):
        condition({"Status": "C", "Other": 1, "STATUS": "D"})
    assert not condition({"Status": "X", "Other": 1})


def test_quoted_identifier_matches_exactly_only() -> None:
    assert truth("\"Status\" = 'C'") is True
    assert truth('"status" IS NULL') is True
    assert truth("\"status\" = 'C'") is None


def test_quoted_identifier_picks_one_of_two_case_variants() -> None:
    row = {"Status": "C", "STATUS": "D"}
    assert parse_condition("\"STATUS\" = 'D'")(row)


def test_dotted_names_walk_into_objects() -> None:
    assert truth("address.city = 'Ghent'") is True
    assert truth("Address.Geo.Lat > 51") is True
    assert truth("address.zip IS NULL") is True
    assert truth("\"Address\".city = 'Ghent'") is True
    assert truth("address.\"City\" = 'Ghent'") is True
    assert truth('"Address"."city" IS NULL') is True
    assert truth('"address".city IS NULL') is True


def test_very_long_dotted_names_walk_every_level() -> None:
    row = {"a": {"b": {"c": {"d": {"e": {"f": 7}}}}}}
    assert truth("a.b.c.d.e.f = 7", row) is True
    assert truth("a.b.c.d.x.f IS NULL", row) is True


def test_condition_names_are_the_fields_as_written() -> None:
    condition = parse_condition("status = 'C' AND \"Code\" > 1 AND address.city IS NULL")
    assert condition.names == frozenset({"status", "Code", "address.city"})
    assert parse_condition("1 = 1").names == frozenset()


def test_condition_keeps_the_users_text() -> None:
    text = "InvoiceAttachmentType = 3 AND status = 'C'"
    assert parse_condition(text).text == text


# --------------------------------------------------------------------------- comparisons


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("InvoiceAttachmentType = 3", True),
        ("InvoiceAttachmentType == 3", True),
        ("InvoiceAttachmentType != 3", False),
        ("InvoiceAttachmentType <> 4", True),
        ("InvoiceAttachmentType < 4", True),
        ("InvoiceAttachmentType <= 3", True),
        ("InvoiceAttachmentType > 3", False),
        ("InvoiceAttachmentType >= 3", True),
        ("3 = InvoiceAttachmentType", True),
        ("4 > InvoiceAttachmentType", True),
        ("4 <= InvoiceAttachmentType", False),
        ("Price = 9.75", True),
        ("Price > 9", True),
        ("InvoiceAttachmentType = 3.0", True),
        ("Name = 'Acme Bakery'", True),
        ("Name = 'acme bakery'", False),
        ("Name < 'B'", True),
        ("Name > 'a'", False),  # code points: 'A' < 'a'
        ("Name = Name", True),
        ("Price > InvoiceAttachmentType", True),
    ],
)
def test_comparisons(text: str, expected: bool) -> None:
    assert truth(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Code = 17", True),
        ("Code = '17'", True),
        ("Code > 9", True),  # numerically, though '17' < '9' as text
        ("InvoiceAttachmentType = '3'", True),
        ("Price > '9.5'", True),
        ("Price = '9.75'", True),
        ("Exact = 0.1", True),  # a numeric column meets a float literal as floats
        ("Exact = '0.1'", True),
        ("Exact < 1", True),
        ("InvoiceAttachmentType = ' 3 '", True),
    ],
)
def test_numbers_meet_numeric_text_numerically(text: str, expected: bool) -> None:
    assert truth(text) is expected


def test_float_meets_decimal_text_as_floats() -> None:
    assert truth("x = '0.1'", {"x": 0.1}) is True
    assert truth("x = 0.1", {"x": Decimal("0.1")}) is True
    assert truth("x = 1", {"x": Decimal("1.000")}) is True


def test_booleans_count_as_one_and_zero() -> None:
    assert truth("Blocked = 0") is True
    assert truth("Blocked = FALSE") is True
    assert truth("x = TRUE", {"x": 1}) is True
    assert truth("x = 1", {"x": True}) is True
    assert truth("x > 0", {"x": True}) is True


@pytest.mark.parametrize(
    "text",
    [
        "Name = 1",
        "Name > 1",
        "Name = 1.5",
        "Code = 'x' OR Code = 17 AND Name = 1",
        "Tags = 'vip'",
        "Tags = 1",
        "Address = 'Ghent'",
        "Tags < Tags",
        "Address > Address",
        "Blocked = 'false'",
        "Note = 1",
        "Note = NULL",
        "Note <> NULL",
        "NULL = NULL",
        "Missing = 1",
    ],
)
def test_type_mixes_and_nulls_compare_as_null(text: str) -> None:
    assert truth(text) is None


def test_objects_and_lists_are_equal_to_equal_structures_only() -> None:
    row = {"a": {"x": [1, 2]}, "b": {"x": [1, 2]}, "c": {"x": [2, 1]}, "l": [1], "m": [1]}
    assert truth("a = b", row) is True
    assert truth("a = c", row) is False
    assert truth("a <> c", row) is True
    assert truth("l = m", row) is True
    assert truth("a = l", row) is None


def test_is_null_and_is_not_null() -> None:
    assert truth("Note IS NULL") is True
    assert truth("Missing IS NULL") is True
    assert truth("Name IS NULL") is False
    assert truth("Note IS NOT NULL") is False
    assert truth("Name IS NOT NULL") is True
    assert truth("Tags IS NOT NULL") is True


def test_is_true_and_is_false_are_never_null() -> None:
    assert truth("Blocked IS FALSE") is True
    assert truth("Blocked IS TRUE") is False
    assert truth("Note IS TRUE") is False
    assert truth("Note IS FALSE") is False
    assert truth("Note IS NOT TRUE") is True
    assert truth("(Note = 1) IS NOT FALSE") is True
    assert truth("InvoiceAttachmentType IS TRUE") is True


def test_is_distinct_from_treats_null_as_a_value() -> None:
    assert truth("Note IS NOT DISTINCT FROM NULL") is True
    assert truth("Note IS DISTINCT FROM 1") is True
    assert truth("Code IS NOT DISTINCT FROM 17") is True
    assert truth("Name IS DISTINCT FROM Name") is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("InvoiceAttachmentType IN (1, 2, 3)", True),
        ("InvoiceAttachmentType IN (1, 2)", False),
        ("InvoiceAttachmentType NOT IN (1, 2)", True),
        ("InvoiceAttachmentType IN (1, NULL)", None),
        ("InvoiceAttachmentType IN (3, NULL)", True),
        ("InvoiceAttachmentType NOT IN (1, NULL)", None),
        ("Note IN (1, 2)", None),
        ("Status IN ('A', 'C')", True),
        ("Status IN ('a', 'c')", False),
        ("Code IN (17, 18)", True),
        ("InvoiceAttachmentType IN ('3', 'x')", True),
        ("InvoiceAttachmentType IN (Price, Code)", False),
        ("Code IN (Price, InvoiceAttachmentType + 14)", True),
        ("Blocked IN (0)", True),
    ],
)
def test_in(text: str, expected: bool | None) -> None:
    assert truth(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("InvoiceAttachmentType BETWEEN 1 AND 3", True),
        ("InvoiceAttachmentType BETWEEN 4 AND 9", False),
        ("InvoiceAttachmentType NOT BETWEEN 4 AND 9", True),
        ("Price BETWEEN '9' AND 10", True),
        ("Name BETWEEN 'A' AND 'B'", True),
        ("Note BETWEEN 1 AND 2", None),
        ("InvoiceAttachmentType BETWEEN NULL AND 2", False),
        ("InvoiceAttachmentType BETWEEN NULL AND 5", None),
        ("Name BETWEEN 1 AND 2", None),
    ],
)
def test_between(text: str, expected: bool | None) -> None:
    assert truth(text) is expected


# --------------------------------------------------------------------------- logic


@pytest.mark.parametrize(
    ("left", "right", "conjunction", "disjunction"),
    [
        (True, True, True, True),
        (True, False, False, True),
        (True, None, None, True),
        (False, False, False, False),
        (False, None, False, None),
        (None, None, None, None),
    ],
)
def test_three_valued_and_or(
    left: bool | None, right: bool | None, conjunction: bool | None, disjunction: bool | None
) -> None:
    for a, b in ((left, right), (right, left)):
        row = {"a": a, "b": b}
        assert truth("a AND b", row) is conjunction
        assert truth("a OR b", row) is disjunction


def test_not_null_is_null() -> None:
    assert truth("NOT (Note = 1)") is None
    assert truth("NOT NULL") is None
    assert truth("NOT Blocked") is True


def test_literals_fold_like_sql() -> None:
    assert truth("FALSE AND NULL") is False
    assert truth("TRUE OR NULL") is True
    assert truth("TRUE AND NULL") is None
    assert truth("NULL") is None
    assert truth("1") is True
    assert truth("0") is False


def test_plain_values_as_conditions() -> None:
    assert truth("x", {"x": 2}) is True
    assert truth("x", {"x": 0.0}) is False
    assert truth("x", {"x": "1"}) is True
    assert truth("x", {"x": "0"}) is False
    assert truth("x", {"x": "yes"}) is None
    assert truth("x", {"x": {"a": 1}}) is None


def test_the_seed_condition() -> None:
    condition = parse_condition("InvoiceAttachmentType = 3 AND status = 'C'")
    assert condition(ACCOUNT)
    assert not condition({**ACCOUNT, "InvoiceAttachmentType": 1})
    assert not condition({**ACCOUNT, "Status": "A"})
    assert not condition({"Status": "C"})
    assert not condition({})


# --------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2", 3),
        ("InvoiceAttachmentType + 1", 4),
        ("InvoiceAttachmentType - 5", -2),
        ("InvoiceAttachmentType * 2", 6),
        ("InvoiceAttachmentType * 1.5", 4.5),
        ("7 / 2", 3),
        ("-7 / 2", -3),
        ("7 / -2", -3),
        ("7.0 / 2", 3.5),
        ("7 % 3", 1),
        ("-7 % 3", -1),
        ("7 % -3", 1),
        ("7.5 % 2", 1.5),
        ("-InvoiceAttachmentType", -3),
        ("- -3", 3),
        ("Code + 1", 18),
        ("'2.5' * 2", Decimal("5.0")),
        ("Exact + 1", Decimal("1.1")),
        ("Exact + 0.5", 0.6),
        ("Blocked + 1", 1),
        ("1 / 0", None),
        ("1 % 0", None),
        ("1.5 / 0", None),
        ("Note + 1", None),
        ("Name + 1", None),
        ("Tags * 2", None),
        ("-Name", None),
        ("Name || '!'", "Acme Bakery!"),
        ("Name || Note", None),
        ("'n=' || InvoiceAttachmentType", "n=3"),
        ("'p=' || Price", "p=9.75"),
        ("'b=' || Blocked", "b=false"),
        ("'t=' || Tags", 't=["vip","food"]'),
    ],
)
def test_arithmetic(expression: str, expected: Any) -> None:
    result = value(expression)
    if isinstance(expected, float):
        assert result == pytest.approx(expected)
        assert isinstance(result, float)
    else:
        assert result == expected
        assert type(result) is type(expected)


# --------------------------------------------------------------------------- functions


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("COALESCE(Note, Missing, 5, 6)", 5),
        ("COALESCE(Note, Missing)", None),
        ("IFNULL(Note, 'x')", "x"),
        ("IFNULL(Name, 'x')", "Acme Bakery"),
        ("NULLIF(InvoiceAttachmentType, 3)", None),
        ("NULLIF(InvoiceAttachmentType, 4)", 3),
        ("NULLIF(Note, 4)", None),
        ("LOWER(Name)", "acme bakery"),
        ("UPPER(Name)", "ACME BAKERY"),
        ("UPPER('straße')", "STRASSE"),
        ("LOWER(Note)", None),
        ("LENGTH(Name)", 11),
        ("LENGTH(Code)", 2),
        ("LENGTH(InvoiceAttachmentType)", 1),
        ("LENGTH(Note)", None),
        ("LENGTH('')", 0),
        ("TRIM('  x  ')", "x"),
        ("LTRIM('  x  ')", "x  "),
        ("RTRIM('  x  ')", "  x"),
        ("TRIM('xxaxx', 'x')", "a"),
        ("LTRIM('xyaxy', 'xy')", "axy"),
        ("TRIM(BOTH 'x' FROM 'xax')", "a"),
        ("TRIM(Note)", None),
        ("TRIM('\tx')", "\tx"),
        ("SUBSTR(Name, 1, 4)", "Acme"),
        ("SUBSTR(Name, 6)", "Bakery"),
        ("SUBSTRING(Name, 6, 3)", "Bak"),
        ("SUBSTRING(Name FROM 6 FOR 3)", "Bak"),
        ("SUBSTR(Name, -6)", "Bakery"),
        ("SUBSTR(Name, -6, 3)", "Bak"),
        ("SUBSTR(Name, 0, 2)", "A"),
        ("SUBSTR(Name, 0)", "Acme Bakery"),
        ("SUBSTR(Name, 5, -4)", "Acme"),
        ("SUBSTR(Name, -20, 12)", "Acm"),
        ("SUBSTR(Name, -20)", "Acme Bakery"),
        ("SUBSTR(Name, 50)", ""),
        ("SUBSTR(Note, 1)", None),
        ("SUBSTR(Name, Note)", None),
        ("SUBSTR(Code, '2')", "7"),
        ("ABS(-3)", 3),
        ("ABS(-Price)", 9.75),
        ("ABS('-2')", 2),
        ("ABS(Note)", None),
        ("ABS(Name)", None),
        ("ROUND(2.5)", 3.0),
        ("ROUND(-2.5)", -3.0),
        ("ROUND(Price, 1)", 9.8),
        ("ROUND(2.675, 2)", 2.68),
        ("ROUND(1234, -2)", 1200),
        ("ROUND(1250, -2)", 1300),
        ("ROUND(7)", 7),
        ("ROUND(Exact, 0)", Decimal("0")),
        ("ROUND(Note, 1)", None),
        ("ROUND(1.25, Note)", None),
    ],
)
def test_functions(expression: str, expected: Any) -> None:
    result = value(expression)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("CAST(Code AS INTEGER)", 17),
        ("CAST('12' AS INT)", 12),
        ("CAST(' 12 ' AS BIGINT)", 12),
        ("CAST(-1.9 AS INTEGER)", -1),
        ("CAST('1.9' AS INTEGER)", 1),
        ("CAST('12abc' AS INTEGER)", None),
        ("CAST(TRUE AS INTEGER)", 1),
        ("CAST(Tags AS INTEGER)", None),
        ("CAST(Note AS INTEGER)", None),
        ("CAST(InvoiceAttachmentType AS TEXT)", "3"),
        ("CAST(Price AS VARCHAR)", "9.75"),
        ("CAST(Blocked AS TEXT)", "false"),
        ("CAST(Exact AS TEXT)", "0.1"),
        ("CAST(Address AS TEXT)", '{"City":"Ghent","Geo":{"Lat":51.05}}'),
        ("CAST(Code AS REAL)", 17.0),
        ("CAST(3 AS FLOAT)", 3.0),
        ("CAST('1e3' AS DOUBLE)", 1000.0),
        ("CAST('x' AS DOUBLE)", None),
        ("CAST('9.50' AS NUMERIC)", Decimal("9.50")),
        ("CAST(Price AS DECIMAL)", Decimal("9.75")),
        ("CAST(3 AS DECIMAL)", Decimal(3)),
        ("CAST('yes' AS BOOLEAN)", True),
        ("CAST('false' AS BOOLEAN)", False),
        ("CAST(0 AS BOOLEAN)", False),
        ("CAST('2' AS BOOLEAN)", True),
        ("CAST('maybe' AS BOOLEAN)", None),
        ("CAST(Code AS INT) + 1", 18),
        ("Code::int", 17),
    ],
)
def test_cast(expression: str, expected: Any) -> None:
    result = value(expression)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("CASE WHEN InvoiceAttachmentType = 3 THEN 'three' ELSE 'other' END", "three"),
        ("CASE WHEN InvoiceAttachmentType = 4 THEN 'four' ELSE 'other' END", "other"),
        ("CASE WHEN InvoiceAttachmentType = 4 THEN 'four' END", None),
        ("CASE WHEN Note = 1 THEN 'null is not true' ELSE 'else' END", "else"),
        ("CASE WHEN Price THEN 'non-zero' END", "non-zero"),
        ("CASE InvoiceAttachmentType WHEN 1 THEN 'one' WHEN 3 THEN 'three' END", "three"),
        ("CASE Code WHEN 17 THEN 'numeric text' END", "numeric text"),
        ("CASE Note WHEN NULL THEN 'never' ELSE 'else' END", "else"),
        ("CASE Status WHEN 'c' THEN 'lower' ELSE 'exact only' END", "exact only"),
    ],
)
def test_case(expression: str, expected: Any) -> None:
    assert value(expression) == expected


# --------------------------------------------------------------------------- LIKE


@pytest.mark.parametrize(
    ("text", "row", "expected"),
    [
        ("x LIKE 'Acme%'", {"x": "Acme Bakery"}, True),
        ("x LIKE 'acme%'", {"x": "Acme Bakery"}, True),
        ("x LIKE '%bakery'", {"x": "Acme Bakery"}, True),
        ("x LIKE '%me B%'", {"x": "Acme Bakery"}, True),
        ("x LIKE 'Acme'", {"x": "Acme Bakery"}, False),
        ("x LIKE 'A_me%'", {"x": "Acme Bakery"}, True),
        ("x LIKE 'A_e%'", {"x": "Acme Bakery"}, False),
        ("x LIKE '_'", {"x": "é"}, True),
        ("x LIKE 'É'", {"x": "é"}, False),  # SQLite: ASCII letters only ignore case
        ("x ILIKE 'É'", {"x": "é"}, True),
        ("x ILIKE 'ACME%'", {"x": "Acme Bakery"}, True),
        ("x NOT LIKE 'Acme%'", {"x": "Acme Bakery"}, False),
        ("x NOT ILIKE 'x%'", {"x": "Acme Bakery"}, True),
        ("x LIKE '%'", {"x": "line\nbreak"}, True),
        ("x LIKE 'a.c'", {"x": "abc"}, False),
        ("x LIKE 'a[b]c'", {"x": "a[b]c"}, True),
        ("x LIKE '100!%' ESCAPE '!'", {"x": "100%"}, True),
        ("x LIKE '100!%' ESCAPE '!'", {"x": "1000"}, False),
        ("x LIKE 'a!_c' ESCAPE '!'", {"x": "a_c"}, True),
        ("x LIKE 'a!_c' ESCAPE '!'", {"x": "abc"}, False),
        ("x LIKE 'a!!c' ESCAPE '!'", {"x": "a!c"}, True),
        ("x NOT LIKE 'a!%' ESCAPE '!'", {"x": "a%"}, False),
        ("x LIKE '1%'", {"x": 17}, True),
        ("x LIKE p", {"x": "Acme", "p": "A%"}, True),
        ("x LIKE p", {"x": "Acme", "p": None}, None),
        ("x LIKE 'A%'", {"x": None}, None),
        ("x LIKE NULL", {"x": "A"}, None),
        ("x NOT LIKE 'A%'", {"x": None}, None),
    ],
)
def test_like(text: str, row: dict[str, Any], expected: bool | None) -> None:
    assert truth(text, row) is expected


# --------------------------------------------------------------------------- ordering


def ordered(text: str, values: list[Any]) -> list[Any]:
    ordering = parse_ordering(text)
    return [row["x"] for row in sorted(({"x": v} for v in values), key=ordering.key)]


MIXED: list[Any] = ["b", None, 2, {"k": 1}, "A", 1.5, [1], True, Decimal("1.25"), "a"]


def test_ascending_mixed_types_sort_like_sqlite() -> None:
    assert ordered("x", MIXED) == [
        None,
        True,
        Decimal("1.25"),
        1.5,
        2,
        "A",
        "a",
        "b",
        [1],
        {"k": 1},
    ]


def test_descending_reverses_values_and_puts_nulls_last() -> None:
    assert ordered("x DESC", MIXED) == [
        {"k": 1},
        [1],
        "b",
        "a",
        "A",
        2,
        1.5,
        Decimal("1.25"),
        True,
        None,
    ]


def test_nulls_first_and_last_override_the_default() -> None:
    values = [2, None, 1]
    assert ordered("x", values) == [None, 1, 2]
    assert ordered("x ASC NULLS LAST", values) == [1, 2, None]
    assert ordered("x DESC", values) == [2, 1, None]
    assert ordered("x DESC NULLS FIRST", values) == [None, 2, 1]


def test_ordering_by_several_terms_and_expressions() -> None:
    rows: list[dict[str, Any]] = [
        {"Name": "b", "Modified": 1, "Code": "2"},
        {"Name": "B", "Modified": 2, "Code": "1"},
        {"Name": "a", "Modified": 2, "Code": "3"},
        {"Name": "A", "Modified": None, "Code": "0"},
    ]
    by_modified = parse_ordering("Modified DESC, Code")
    assert [r["Code"] for r in sorted(rows, key=by_modified.key)] == ["1", "3", "2", "0"]
    by_lower_name = parse_ordering("lower(Name) ASC NULLS LAST, Code DESC")
    assert [r["Code"] for r in sorted(rows, key=by_lower_name.key)] == ["3", "0", "2", "1"]
    assert by_lower_name.names == frozenset({"Name", "Code"})


def test_ordering_resolves_names_like_conditions() -> None:
    rows = [{"Name": "b"}, {"Name": "a"}, {"NAME2": "z"}]
    assert [r.get("Name") for r in sorted(rows, key=parse_ordering("name").key)] == [
        None,
        "a",
        "b",
    ]


def test_ordering_keys_work_with_heapq() -> None:
    ordering = parse_ordering("x DESC")
    rows = [{"x": v} for v in MIXED]
    smallest = heapq.nsmallest(3, rows, key=ordering.key)
    assert [r["x"] for r in smallest] == [{"k": 1}, [1], "b"]


def test_numbers_sort_numerically_across_types() -> None:
    assert ordered("x", [10, Decimal("9.5"), 9.75, False, -1]) == [
        -1,
        False,
        Decimal("9.5"),
        9.75,
        10,
    ]


def test_ordering_keeps_its_text() -> None:
    assert parse_ordering("Modified DESC, Code").text == "Modified DESC, Code"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.decimals(allow_nan=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.lists(json_values, max_size=12),
    st.sampled_from(["x", "x DESC", "x NULLS LAST", "x DESC NULLS FIRST", "x DESC, y"]),
)
def test_sorting_any_json_values_never_raises_and_keys_are_trichotomous(
    values: list[Any], text: str
) -> None:
    ordering = parse_ordering(text)
    keys = sorted(ordering.key({"x": v, "y": v}) for v in values)
    for a in keys:
        for b in keys:
            assert (a < b) + (b < a) + (a == b) == 1


@given(json_values, json_values)
def test_comparisons_are_symmetric(a: Any, b: Any) -> None:
    row = {"a": a, "b": b}
    assert truth("a = b", row) is truth("b = a", row)
    assert truth("a < b", row) is truth("b > a", row)
    assert truth("a <= b", row) is truth("b >= a", row)


@given(json_values)
def test_a_value_equals_itself_unless_null(a: Any) -> None:
    expected = None if a is None else True
    assert truth("a = b", {"a": a, "b": a}) is expected


# --------------------------------------------------------------------------- --set


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("InvoiceAttachmentType=1", "InvoiceAttachmentType", 1),
        ("Price=1.5", "Price", 1.5),
        ("Active=true", "Active", True),
        ("Active=false", "Active", False),
        ("Note=null", "Note", None),
        ('Name="x"', "Name", "x"),
        ('Name=" padded "', "Name", " padded "),
        ('Meta={"a": 1}', "Meta", {"a": 1}),
        ("Tags=[1, 2]", "Tags", [1, 2]),
        ("Name=Acme Bakery", "Name", "Acme Bakery"),
        ("Code=017", "Code", "017"),
        ("Name=NaN", "Name", "NaN"),
        ("Name=", "Name", ""),
        ("Field = value", "Field", "value"),
        ("Field = 3", "Field", 3),
        ("Formula=a=b", "Formula", "a=b"),
        ("address.city=Ghent", "address.city", "Ghent"),
    ],
)
def test_parse_assignment(text: str, field: str, expected: Any) -> None:
    assignment = parse_assignment(text)
    assert assignment.field == field
    assert assignment.constant
    assert assignment.value({}) == expected
    assert type(assignment.value({"Name": "ignored"})) is type(expected)


def test_assignment_values_are_fresh_copies() -> None:
    assignment = parse_assignment('Meta={"a": [1]}')
    first = assignment.value({})
    first["a"].append(2)
    assert assignment.value({}) == {"a": [1]}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("=1", "field name"),
        ("  =1", "field name"),
        ("NoEquals", "FIELD=VALUE"),
        ("a..b=1", "empty part"),
        (".a=1", "empty part"),
    ],
)
def test_parse_assignment_refusals(text: str, fragment: str) -> None:
    assert fragment in refused(parse_assignment, text)


# --------------------------------------------------------------------------- UPDATE


def test_parse_update_of_the_seed_statement() -> None:
    statement = parse_update(SEED)
    assert statement.table == "accounts"
    assert [a.field for a in statement.assignments] == ["InvoiceAttachmentType"]
    assert statement.assignments[0].constant
    assert statement.assignments[0].value({}) == 1
    assert statement.where is not None
    assert statement.where(ACCOUNT)
    assert not statement.where({**ACCOUNT, "Status": "A"})
    assert statement.where.names == frozenset({"InvoiceAttachmentType", "status"})
    assert statement.order is None
    assert statement.limit == 100


def test_parse_update_with_order_by() -> None:
    statement = parse_update(SEED_ORDERED)
    assert statement.order is not None
    assert statement.limit == 100
    rows = [{"Modified": m} for m in ("2024-01-01", None, "2025-06-30")]
    keys = [r["Modified"] for r in sorted(rows, key=statement.order.key)]
    assert keys == ["2025-06-30", "2024-01-01", None]


def test_parse_update_texts_parse_again_to_the_same_statement() -> None:
    statement = parse_update(SEED_ORDERED)
    assert statement.where is not None
    assert statement.order is not None
    again = parse_update(
        f"UPDATE accounts SET InvoiceAttachmentType = 1 WHERE {statement.where.text} "
        f"ORDER BY {statement.order.text} LIMIT {statement.limit}"
    )
    assert again == statement


def test_parse_update_without_where_or_limit() -> None:
    statement = parse_update("UPDATE accounts SET Blocked = TRUE")
    assert statement.where is None
    assert statement.order is None
    assert statement.limit is None
    assert statement.assignments[0].value({}) is True


def test_parse_update_accepts_a_trailing_semicolon_and_limit_zero() -> None:
    assert parse_update("UPDATE a SET x = 1 LIMIT 0;").limit == 0


def test_set_from_a_field_is_not_constant() -> None:
    statement = parse_update("UPDATE accounts SET a = a + 1, label = 'n' || Code")
    increment, label = statement.assignments
    assert not increment.constant
    assert increment.value({"a": 4}) == 5
    assert increment.value({"A": 4}) == 5
    assert increment.value({}) is None
    assert not label.constant
    assert label.value({"code": 7}) == "n7"


def test_set_of_a_constant_expression_is_constant() -> None:
    (assignment,) = parse_update("UPDATE t SET x = 2 * 3 || 'x'").assignments
    assert assignment.constant
    assert assignment.value({}) == "6x"


def test_parse_update_dotted_table_and_fields() -> None:
    statement = parse_update("UPDATE exact.accounts SET address.city = 'Gent', \"Name\" = 'A'")
    assert statement.table == "exact.accounts"
    assert [a.field for a in statement.assignments] == ["address.city", "Name"]


def test_parse_update_keeps_the_case_of_names() -> None:
    statement = parse_update('UPDATE "Accounts" SET InvoiceAttachmentType = 1')
    assert statement.table == "Accounts"


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELECT * FROM accounts", "only UPDATE is supported"),
        ("DELETE FROM accounts WHERE a = 1", "only UPDATE is supported"),
        ("INSERT INTO accounts VALUES (1)", "only UPDATE is supported"),
        ("DROP TABLE accounts", "only UPDATE is supported"),
        ("UPDATE a SET x = 1; UPDATE a SET x = 2", "single statement"),
        ("UPDATE a SET x = 1; DROP TABLE a", "single statement"),
        ("", "empty"),
        ("UPDATE a SET x = 1 FROM b WHERE a.id = b.id", "UPDATE … FROM"),
        ("UPDATE a SET x = 1 RETURNING x", "RETURNING"),
        ("WITH c AS (SELECT 1) UPDATE a SET x = 1", "WITH"),
        ("UPDATE a AS t SET x = 1", "alias"),
        ("UPDATE a JOIN b ON a.i = b.i SET x = 1", "JOIN"),
        ("UPDATE a, b SET x = 1", "JOIN"),
        ("UPDATE a SET x = 1 LIMIT -1", "non-negative integer"),
        ("UPDATE a SET x = 1 LIMIT 1.5", "non-negative integer"),
        ("UPDATE a SET x = 1 LIMIT '5'", "non-negative integer"),
        ("UPDATE a SET x = 1 LIMIT n", "non-negative integer"),
        ("UPDATE a SET x = 1 LIMIT 5, 10", "OFFSET"),
        ("UPDATE a SET x = 1, X = 2", "the same field"),
        ("UPDATE a SET b.c = 1, B.C = 2", "the same field"),
        ("UPDATE a SET (x, y) = (1, 2)", "field name"),
        ('UPDATE a SET "x.y" = 1', "inside quotes"),
        ("UPDATE a SET x = (SELECT 1)", "subquery"),
        ("UPDATE a SET x = count(*)", "aggregate function"),
        ("UPDATE a SET x = 1 WHERE y IN (SELECT y FROM b)", "subquery"),
        ("UPDATE a SET x = 1 WHERE json_each(y)", "function json_each"),
        ("UPDATE a SET x = 1 ORDER BY (SELECT 1)", "subquery"),
        ("UPDATE a SET x = ?", "parameter"),
        ("UPDATE a SET x = = 1", "cannot parse"),
    ],
)
def test_parse_update_refusals(sql: str, fragment: str) -> None:
    message = refused(parse_update, sql)
    assert fragment in message
    if sql:
        assert sql.strip() in message


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a IN (SELECT b FROM t)", "unsupported in --where: subquery"),
        ("EXISTS (SELECT 1)", "unsupported in --where: subquery"),
        ("a = (SELECT 1)", "unsupported in --where: subquery"),
        ("count(*) > 1", "aggregate function COUNT"),
        ("sum(a) > 1", "aggregate function SUM"),
        ("row_number() OVER () = 1", "window function"),
        ("json_each(a)", "unsupported function json_each"),
        ("date(a) = '2024-01-01'", "unsupported function DATE"),
        ("a = ?", "parameter"),
        ("a = :name", "parameter"),
        ("a = @name", "parameter"),
        ("a = $1", "parameter"),
        ("*", "*"),
        ("a GLOB 'x*'", "GLOB"),
        ("a = 1; DROP TABLE x", "single expression"),
        ("SELECT 1", "not a SELECT statement"),
        ("DROP TABLE x", "not a DROP statement"),
        ("a = 1 b", "alias"),
        ("a = 'unterminated", "cannot parse"),
        ("a = = 1", "cannot parse"),
        ("", "empty"),
        ("   ", "empty"),
        ("CAST(a AS DATE) = 1", "CAST to DATE"),
        ("CAST(a AS VARCHAR(3)) = 'x'", "CAST to VARCHAR(3)"),
        ("a LIKE 'x' ESCAPE 'ab'", "ESCAPE"),
        ("a BETWEEN SYMMETRIC 2 AND 1", "symmetric"),
        ("(a, b) = (1, 2)", "TUPLE"),
    ],
)
def test_condition_refusals_name_the_construct_and_quote_the_text(text: str, fragment: str) -> None:
    message = refused(parse_condition, text)
    assert fragment in message
    if text.strip():
        assert text in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("Name LIMIT 5", "cannot parse"),
        ("Name; DROP TABLE x", "cannot parse"),
        ("(SELECT 1)", "subquery"),
        ("count(*)", "aggregate function"),
        ("json_each(a)", "function json_each"),
    ],
)
def test_ordering_refusals(text: str, fragment: str) -> None:
    assert fragment in refused(parse_ordering, text)


def test_query_error_is_a_value_error() -> None:
    assert issubclass(QueryError, ValueError)


def test_a_decimal_nan_sorts_without_raising() -> None:
    ordering = parse_ordering("x")
    rows: list[dict[str, Any]] = [{"x": "a"}, {"x": Decimal("NaN")}, {"x": 1}]
    assert sorted(rows, key=ordering.key)[-1] == {"x": "a"}
