"""compile_path: the fast path for plain names agrees with JMESPath; real expressions work."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncline.jpath import compile_path

DOC: dict[str, Any] = {
    "id": 7,
    "data": [{"id": "a"}, {"id": "b"}],
    "meta": {"page": {"last": 3, "zero": 0, "off": False, "none": None}},
    "_links": {"inx:upcoming-modifications": {"href": "/next?x=1"}},
    "with space": 1,
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("id", 7),
        ("missing", None),
        ("meta.page.last", 3),
        ("meta.page.zero", 0),
        ("meta.page.off", False),
        ("meta.page.none", None),
        ("meta.page.last.deeper", None),  # through a non-object
        ("meta.nothing.last", None),
        ("data.id", None),  # through a list: plain paths do not project
        ("_links", DOC["_links"]),
        ('_links."inx:upcoming-modifications".href', "/next?x=1"),
        ("data[0].id", "a"),
        ("data[-1].id", "b"),
        ("data[*].id", ["a", "b"]),
        ("length(data)", 2),
        ('"with space"', 1),
    ],
)
def test_compile_path(expression: str, expected: Any) -> None:
    assert compile_path(expression)(DOC) == expected


@pytest.mark.parametrize("value", [None, [], [{"id": 1}], "id", 5, 2.5, True])
@pytest.mark.parametrize("expression", ["id", "a.b", "a.b.c"])
def test_plain_paths_on_non_objects_are_none(expression: str, value: Any) -> None:
    assert compile_path(expression)(value) is None


def test_compiled_getters_are_cached() -> None:
    assert compile_path("meta.page.last") is compile_path("meta.page.last")


def test_invalid_expression_raises() -> None:
    with pytest.raises(jmespath.exceptions.ParseError):
        compile_path("data[[")


NAMES = st.sampled_from(["a", "b", "c", "_x", "id2"])
JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
JSON = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(NAMES, children, max_size=4),
    max_leaves=15,
)


@given(st.lists(NAMES, min_size=1, max_size=4), JSON)
def test_fast_path_agrees_with_jmespath(names: list[str], document: Any) -> None:
    expression = ".".join(names)
    assert compile_path(expression)(document) == jmespath.search(expression, document)
