"""RFC 8288 Link header parsing: the variations real servers send."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncline.link_header import find_link, parse_link_headers

BASE = "https://api.test/v1/repos?page=2"


@pytest.mark.parametrize(
    ("values", "rel", "expected"),
    [
        (
            ['<https://api.test/v1/repos?page=3>; rel="next"'],
            "next",
            "https://api.test/v1/repos?page=3",
        ),
        (["</v1/repos?page=3>; rel=next"], "next", "https://api.test/v1/repos?page=3"),
        (["<?page=3>; rel=next"], "next", "https://api.test/v1/repos?page=3"),
        (["<repos?page=3>; rel=next"], "next", "https://api.test/v1/repos?page=3"),
        (["<//other.test/x>; rel=next"], "next", "https://other.test/x"),
        # several header values (several Link lines)
        (
            ['<?page=1>; rel="prev"', '<?page=3>; rel="next"'],
            "next",
            "https://api.test/v1/repos?page=3",
        ),
        # several links in one value
        (
            ['<?page=1>; rel="prev", <?page=3>; rel="next", <?page=9>; rel="last"'],
            "next",
            "https://api.test/v1/repos?page=3",
        ),
        (
            ['<?page=1>; rel="prev", <?page=3>; rel="next", <?page=9>; rel="last"'],
            "last",
            "https://api.test/v1/repos?page=9",
        ),
        # several relation types in one rel
        (['<?page=3>; rel="next last"'], "next", "https://api.test/v1/repos?page=3"),
        (['<?page=3>; rel="next last"'], "last", "https://api.test/v1/repos?page=3"),
        (['<?page=3>; rel="  prev   next "'], "next", "https://api.test/v1/repos?page=3"),
        # case-insensitive names and values
        (["<?page=3>; REL=NEXT"], "next", "https://api.test/v1/repos?page=3"),
        (['<?page=3>; Rel="Next"'], "NEXT", "https://api.test/v1/repos?page=3"),
        # extra whitespace everywhere
        (
            ['   <  ?page=3  >   ;   rel  =  "next"  ,  <?page=1>;rel=prev'],
            "next",
            "https://api.test/v1/repos?page=3",
        ),
        (["<?page=3>;\trel=next"], "next", "https://api.test/v1/repos?page=3"),
        # duplicated rel parameter: only the first counts
        (
            ["<?page=1>; rel=prev; rel=next, <?page=3>; rel=next"],
            "next",
            "https://api.test/v1/repos?page=3",
        ),
        # quoted commas and semicolons inside parameters
        (['<?page=3>; title="a, b; c"; rel="next"'], "next", "https://api.test/v1/repos?page=3"),
        (
            ['<?page=1>; title="x, <https://evil.test/>; rel=next", <?page=3>; rel=next'],
            "next",
            "https://api.test/v1/repos?page=3",
        ),
        (
            ['<?page=3>; title="say \\"hi\\", ok"; rel=next'],
            "next",
            "https://api.test/v1/repos?page=3",
        ),
        # commas inside the target
        (["<?ids=1,2,3>; rel=next"], "next", "https://api.test/v1/repos?ids=1,2,3"),
        # the first matching link wins
        (
            ["<?page=3>; rel=next", "<?page=4>; rel=next"],
            "next",
            "https://api.test/v1/repos?page=3",
        ),
    ],
)
def test_find_link(values: list[str], rel: str, expected: str) -> None:
    assert find_link(values, rel, BASE) == expected


@pytest.mark.parametrize(
    "values",
    [
        [],
        [""],
        ['<?page=1>; rel="prev", <?page=9>; rel="last"'],
        ["<?page=3>; rel=nextpage"],
        ['<?page=3>; title="next"'],
        ["<?page=3>; rel"],
        ["<?page=3>"],
        ["?page=3; rel=next"],  # no angle brackets: not a link
        ["<?page=3; rel=next"],  # never closed
        ["<?page=1>; rel=prev; rel=next"],  # the second rel is ignored
    ],
)
def test_find_link_without_a_next_link(values: list[str]) -> None:
    assert find_link(values, "next", BASE) is None


def test_parse_link_headers_keeps_order_rels_and_params() -> None:
    links = parse_link_headers(
        ['<https://a.test/1>; rel="prev first"; title="One, two", <https://a.test/2>; REL=Next']
    )
    assert [link.target for link in links] == ["https://a.test/1", "https://a.test/2"]
    assert links[0].rels == frozenset({"prev", "first"})
    assert links[0].params["title"] == "One, two"
    assert links[1].rels == frozenset({"next"})


def test_parse_link_headers_skips_junk_between_parameters() -> None:
    links = parse_link_headers(["<https://a.test/2> junk ; rel=next"])
    assert [(link.target, link.rels) for link in links] == [
        ("https://a.test/2", frozenset({"next"}))
    ]


HEADER_TOKENS = st.sampled_from(
    [*'<>;,="\\ \trelRELnxtpv?/&:.#%ab12', "rel=", "next", "; ", ", ", "<?p=2>", '"']
)
HEADER_VALUES = st.lists(HEADER_TOKENS, max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(HEADER_VALUES, max_size=3))
def test_parse_link_headers_never_raises_on_garbage(values: list[str]) -> None:
    for link in parse_link_headers(values):
        assert isinstance(link.target, str)
        assert all(rel == rel.lower() for rel in link.rels)
    found = find_link(values, "next", BASE)
    assert found is None or found.startswith("https://")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_parse_link_headers_never_raises_on_any_text(value: str) -> None:
    parse_link_headers([value])


@pytest.mark.parametrize("value", ["<http://[oops/x>; rel=next", "<//[::1/x>; rel=next"])
def test_find_link_never_raises_on_a_malformed_target(value: str) -> None:
    assert find_link([value], "next", BASE) is None
