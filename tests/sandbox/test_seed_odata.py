"""Pure tests of the OData ``$filter``/``$select`` parser behind the Exact emulation."""

from __future__ import annotations

from typing import Any

import pytest

from syncline.sandbox.seeds.common import parse_iso_ms
from syncline.sandbox.seeds.odata import (
    FilterError,
    Kind,
    lower_bound,
    matches,
    parse_filter,
    parse_select,
    tokenize,
)

FIELDS: dict[str, Kind] = {
    "ID": "guid",
    "Name": "string",
    "Status": "string",
    "InvoiceAttachmentType": "int",
    "Timestamp": "int",
    "Blocked": "bool",
    "Modified": "datetime",
    "Email": "string",
}
GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
RECORD: dict[str, Any] = {
    "ID": GUID,
    "Name": "O'Brien Molen B.V.",
    "Status": "C",
    "InvoiceAttachmentType": 3,
    "Timestamp": 12_345,
    "Blocked": False,
    "Modified": parse_iso_ms("2024-03-01T12:00:00Z"),
    "Email": None,
}


def check(text: str, record: dict[str, Any] = RECORD) -> bool:
    return matches(parse_filter(text, FIELDS), record)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Status eq 'C'", True),
        ("Status eq 'c'", True),  # case-insensitive, like Exact's collation
        ("Status ne 'C'", False),
        ("InvoiceAttachmentType eq 3 and Status eq 'C'", True),
        ("InvoiceAttachmentType eq 3 and Status eq 'P'", False),
        ("InvoiceAttachmentType eq 1 or Status eq 'C'", True),
        ("not (Status eq 'C')", False),
        ("(InvoiceAttachmentType ge 3) and (InvoiceAttachmentType le 3)", True),
        ("InvoiceAttachmentType gt 3", False),
        ("InvoiceAttachmentType lt 4", True),
        ("Timestamp gt 12344L", True),
        ("Timestamp gt 12345L", False),
        ("Timestamp ge 12345", True),
        (f"ID eq guid'{GUID.upper()}'", True),
        ("ID eq guid'00000000-0000-4000-8000-000000000000'", False),
        ("Modified gt datetime'2024-03-01'", True),
        ("Modified ge datetime'2024-03-01T12:00:00'", True),
        ("Modified gt datetime'2024-03-01T12:00:00'", False),
        ("Modified lt datetime'2024-03-02T00:00:00Z'", True),
        ("Name eq 'O''Brien Molen B.V.'", True),
        ("Blocked eq false", True),
        ("Email eq null", True),
        ("Email ne null", False),
        ("Email gt 'a'", False),  # null never orders
        ("substringof('molen', Name)", True),
        ("startswith(Name, 'o''brien')", True),
        ("endswith(Name, 'B.V.')", True),
        ("tolower(Status) eq 'c'", True),
        ("trim(Name) eq 'O''Brien Molen B.V.'", True),
        ("length(Status) eq 1", True),
        ("InvoiceAttachmentType eq 3.0M", True),
    ],
)
def test_filter_semantics(text: str, expected: bool) -> None:
    assert check(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Status",  # not boolean
        "Status eq",
        "Status eq 'C' and",
        "Status eq 3",  # string vs int
        "ID eq 'abc'",  # guid vs string
        "ID eq guid'not-a-guid'",
        "Modified gt datetime'yesterday'",
        "Nope eq 1",
        "Status eq 'C')",
        "(Status eq 'C'",
        "unknown(Name)",
        "substringof('a')",
        "Blocked gt true",
        "Status eq 'C' xor Status eq 'P'",
        "Status eq 'unterminated",
        "Status # 'C'",
    ],
)
def test_invalid_filters_are_rejected(text: str) -> None:
    with pytest.raises(FilterError):
        parse_filter(text, FIELDS)


def test_tokenize_typed_literals() -> None:
    kinds = [token.kind for token in tokenize(f"ID eq guid'{GUID}' and Timestamp gt 5L")]
    assert kinds == ["ident", "ident", "typed", "ident", "ident", "ident", "number"]


def test_select() -> None:
    assert parse_select(None, FIELDS) is None
    assert parse_select("*", FIELDS) is None
    assert parse_select("ID, Name", FIELDS) == ("ID", "Name")
    with pytest.raises(FilterError):
        parse_select("ID,Nope", FIELDS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Timestamp gt 5L", 5),
        ("Timestamp gt 5", 5),
        ("Status eq 'C' and Timestamp gt 17L", 17),
        ("(Timestamp gt 9L) and Status eq 'C'", 9),
        ("Timestamp ge 5L", None),
        ("Timestamp gt 5L or Status eq 'C'", None),
        ("Status eq 'C'", None),
        ("", None),
    ],
)
def test_lower_bound(text: str, expected: int | None) -> None:
    assert lower_bound(text, "Timestamp") == expected
