"""Cheap, deterministic generation of sandbox records.

Why generate instead of store: the benchmark serves up to 1,000,000 records and
a dict per record would cost gigabytes.  Instead a record is a pure function of
``(seed, id, version, created_at, updated_at)``: a couple of integer hash mixes
pick words from small tables, so building the 1,000 dicts of one page costs a
few milliseconds and the dataset only keeps a handful of integers per record.

Fields that depend on ``version`` (``name``, ``price``, ``stock``) are built so
that consecutive versions always differ; a test that updates a record can rely
on the change being visible in the synced store.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any, Final

Record = dict[str, Any]

EPOCH: Final = 1_704_067_200
"""2024-01-01T00:00:00Z as Unix seconds; base record ``id`` is at ``EPOCH + id``."""

_MASK: Final = (1 << 64) - 1


def _words(text: str) -> tuple[str, ...]:
    """Word tables are written as plain text to keep them compact and readable."""
    return tuple(text.split())


_ADJECTIVES: Final = _words(
    "Sturdy Compact Deluxe Rustic Modern Classic Vivid Quiet Rapid Gentle Bold Slim "
    "Heavy Bright Smart Simple Urban Polar Lunar Solar Royal Noble Swift Calm Prime "
    "Grand Tiny Mighty Clever Cosmic Golden Silver"
)
_MATERIALS: Final = _words(
    "Oak Steel Copper Linen Wool Bamboo Glass Marble Cotton Leather Ceramic Granite "
    "Walnut Brass Cork Slate"
)
_NOUNS: Final = _words(
    "Lantern Kettle Backpack Chair Desk Lamp Mug Blanket Speaker Clock Bottle "
    "Notebook Pillow Shelf Stool Vase Tray Basket Bench Bowl Candle Crate Easel Globe "
    "Hammock Jar Ladder Mirror Planter Rug Sofa Teapot"
)
_OPENINGS: Final = (
    "Crafted by hand in a small workshop,",
    "Designed for everyday use at home,",
    "Built to survive years of heavy use,",
    "Made from responsibly sourced materials,",
    "Inspired by mid-century Nordic design,",
    "Tested in harsh outdoor conditions,",
    "Developed together with professionals,",
    "Shaped with a focus on clean lines,",
    "Finished with a durable natural coating,",
    "Assembled from modular spare parts,",
    "Produced in a limited seasonal batch,",
    "Refined over many careful iterations,",
    "Engineered for a long service life,",
    "Sketched first on a kitchen napkin,",
    "Packed in fully recyclable cardboard,",
    "Balanced for comfort and good looks,",
)
_MIDDLES: Final = (
    "it blends into any living room, studio or home office without fuss",
    "it keeps its shape and colour after many years of daily use",
    "it is easy to clean with warm water and a soft cloth",
    "it weighs noticeably less than you would expect from its size",
    "it pairs well with every other piece from the same product line",
    "it ships flat in one box and assembles in just a few minutes",
    "it resists scratches, stains and dents better than most rivals",
    "it comes with a two year warranty and free spare parts",
)
_CLOSINGS: Final = (
    "and makes a thoughtful gift for friends and family.",
    "and is one of the most loved items in our catalogue.",
    "and needs no tools at all to set up or take apart.",
    "and stacks neatly in a cupboard when not in use.",
    "and ages beautifully, gaining character over time.",
    "and fits comfortably in small city apartments.",
    "and is designed to be repaired rather than replaced.",
    "and looks just as good in person as on camera.",
)
_CURRENCIES: Final = ("EUR", "USD", "GBP", "CHF")
_CATEGORIES: Final = _words("home garden office kitchen outdoor lighting storage decor")
_TAGS: Final = _words(
    "eco sale new bestseller handmade limited gift premium outdoor indoor compact "
    "durable vintage modern kids pro"
)
_COLORS: Final = _words(
    "red blue green black white grey teal amber navy olive coral ivory plum sand mint rust"
)
_SIZES: Final = ("XS", "S", "M", "L", "XL", "XXL", "one-size", "large")
# build_record picks words with bit masks, so each table size must be exact.
assert (len(_ADJECTIVES), len(_MATERIALS), len(_NOUNS), len(_OPENINGS)) == (32, 16, 32, 16)
assert (len(_MIDDLES), len(_CLOSINGS), len(_CATEGORIES), len(_SIZES)) == (8, 8, 8, 8)
assert (len(_TAGS), len(_COLORS), len(_CURRENCIES)) == (16, 16, 4)


def mix(value: int) -> int:
    """SplitMix64 finaliser: spreads any integer over 64 well-mixed bits."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


_SECOND_SUFFIXES: Final = tuple(f"{second:02d}Z" for second in range(60))


@lru_cache(maxsize=8192)
def _minute_prefix(minute: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))


def format_ts(ts: int) -> str:
    """Format Unix seconds as ``YYYY-MM-DDTHH:MM:SSZ``.

    ``strftime`` runs once per minute (cached); per record it is one cache
    lookup and a concatenation, which keeps formatting off the page profile.
    """
    minute, second = divmod(ts, 60)
    return _minute_prefix(minute) + _SECOND_SUFFIXES[second]


def _tag_combo(bits: int) -> tuple[str, ...]:
    first = bits & 15
    second = (first + 1 + ((bits >> 4) & 7)) & 15
    if not (bits >> 7) & 1:
        return (_TAGS[first], _TAGS[second])
    # The third tag is 2..12 steps from the first, so the three never repeat.
    return (_TAGS[first], _TAGS[second], _TAGS[(second + 1 + ((bits >> 8) & 3)) & 15])


# Word combinations are pre-joined once at import (a few hundred KB) so that a
# record costs table lookups instead of string formatting.
_DESCRIPTIONS: Final = tuple(
    f"{opening} {middle} {closing}"
    for opening in _OPENINGS
    for middle in _MIDDLES
    for closing in _CLOSINGS
)
_PRODUCTS: Final = tuple(f" {material} {noun} Mk " for material in _MATERIALS for noun in _NOUNS)
_TAG_COMBOS: Final = tuple(_tag_combo(bits) for bits in range(1024))
_SKU_SUFFIXES: Final = tuple(f"-{material[:2].upper()}" for material in _MATERIALS)
_CENTS: Final = tuple(f".{cents:02d}" for cents in range(100))
_LOW30: Final = (1 << 30) - 1


def build_record(salt: int, rid: int, version: int, created_ts: int, updated_ts: int) -> Record:
    """Build the JSON-ready dict of record ``rid`` at ``version``.

    ``salt`` is derived from the dataset seed.  One 64-bit mix per id is split
    into two 30-bit words (small ints are fast in CPython) for the fields that
    never change; ``varying`` is re-derived per version.  ``tags`` comes from a
    tuple copied into a fresh list, so callers may mutate what they get.
    """
    stable = mix(salt ^ rid)
    low = stable & _LOW30
    high = (stable >> 32) & _LOW30
    varying = (((low ^ version) * 0x9E3779B1) >> 7) & _LOW30
    # Prices only ever rise (>= 25 cents) and stock moves by 7 (mod 1000) per
    # version, so an update is always observable in both fields.
    cents = 199 + high % 49_000 + version * 37 + varying % 13
    updated_at = format_ts(updated_ts)
    return {
        "id": rid,
        "sku": f"SKU-{rid:07d}" + _SKU_SUFFIXES[(high >> 16) & 15],
        "name": _ADJECTIVES[varying & 31] + _PRODUCTS[low & 511] + str(version),
        "description": _DESCRIPTIONS[(low >> 9) & 1023],
        "price": str(cents // 100) + _CENTS[cents % 100],
        "currency": _CURRENCIES[(low >> 19) & 3],
        "stock": (high % 997 + version * 7) % 1_000,
        "category": _CATEGORIES[(low >> 21) & 7],
        "tags": list(_TAG_COMBOS[(high >> 20) & 1023]),
        "attributes": {
            "color": _COLORS[(low >> 24) & 15],
            "size": _SIZES[(low >> 27) & 7],
            "weight": ((high >> 3) % 25_000 + 5) / 100,
        },
        "created_at": updated_at if created_ts == updated_ts else format_ts(created_ts),
        "updated_at": updated_at,
        "version": version,
    }
