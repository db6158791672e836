"""The SQL a push is written in, evaluated in Python over each mirror row.

``syncline push accounts --set A=1 --where "A = 3 AND status = 'C'" --order Name``
and ``syncline sql "UPDATE accounts SET A = 1 WHERE … ORDER BY … LIMIT 100"``
select the rows to change with SQL fragments. They are parsed with sqlglot
(default dialect: ``"x"`` is an identifier, ``'x'`` a string) and compiled
once into a tree of small closures, which is then run on every stored row.

Why not hand the condition to the store's own SQL engine: the mirror lives in
SQLite, PostgreSQL, DuckDB or JSON-lines files, and each database types the
values inside ``_data`` differently (is ``'17'`` equal to ``17``? does ``LIKE``
ignore case? what is ``NULL < 'a'``?). A push changes real data at the API, so
the same statement must select the *same rows on every store*; evaluating it
here, with one set of rules, is the only way to promise that.

The rules:

Names
    ``Name`` looks the row up by exact key first, else by the one key that
    matches ignoring case (SQL identifiers are case-insensitive: ``status``
    finds Exact's ``Status``); two such keys are an error naming both; no key
    is ``NULL`` (records may lack optional fields). ``"Name"`` (quoted) matches
    exactly only. ``address.city`` walks into nested objects with the same rule
    at every level; a missing level is ``NULL``. See :func:`resolve`.
Values
    JSON values and ``Decimal``. Numbers (``int``, ``float``, ``Decimal``, and
    ``bool`` as 1/0 like SQLite) compare numerically, exactly unless a float
    is involved (then as floats, so ``0.1`` equals a ``numeric`` ``0.1``).
    Text compares by code points. A number meets text that reads as a number
    numerically (``Code = '17'``, ``Price > '9.5'``). Any other mix of types is
    ``NULL``, never an error. Objects and lists are equal only to an equal
    structure and have no order (``<`` on them is ``NULL``). Text functions,
    ``LIKE`` and ``||`` see a non-text value as its JSON text (``true``, ``1.5``,
    ``{"a":1}``).
Logic
    SQL's three values: ``NULL`` propagates through comparisons, arithmetic and
    functions; ``FALSE AND NULL`` is ``FALSE``, ``TRUE OR NULL`` is ``TRUE``,
    ``NOT NULL`` is ``NULL``. A condition selects a row only when ``TRUE``. A
    plain value used as a condition is true when it is a non-zero number (or
    text reading as one); other text, objects and lists are ``NULL``.
Arithmetic
    ``int / int`` truncates toward zero and ``%`` takes the dividend's sign
    (SQLite); a zero divisor gives ``NULL``; text that reads as a number counts
    as that number, other operands give ``NULL``. Integer literals are ``int``,
    others ``float``.
``LIKE``
    ``%`` and ``_`` with an optional one-character ``ESCAPE``; ``LIKE`` ignores
    case for ASCII letters only (SQLite), ``ILIKE`` for all letters.
Functions
    ``COALESCE IFNULL NULLIF LOWER UPPER LENGTH TRIM LTRIM RTRIM SUBSTR
    SUBSTRING ABS ROUND CAST``, and ``CASE``. ``SUBSTR`` is 1-based with SQLite's
    negative positions; ``ROUND`` rounds half away from zero and keeps its
    argument's type; ``CAST`` of text that is not a number is ``NULL``.
Order
    ``ASC``/``DESC`` per term, ``NULLS FIRST``/``LAST`` (by default ``NULL`` is
    smallest, as in SQLite). Mixed types sort ``NULL`` < numbers < text <
    anything else (by its JSON text), so every pair of keys compares.

Subqueries, aggregates, window functions, ``*``, parameters and anything not
listed are refused when parsed, with the construct and the user's text.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import operator
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache, total_ordering
from typing import Any

import orjson
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from syncline.errors import ConfigError

__all__ = [
    "Assignment",
    "Condition",
    "Ordering",
    "QueryError",
    "Row",
    "UpdateStatement",
    "parse_assignment",
    "parse_condition",
    "parse_ordering",
    "parse_update",
    "resolve",
]

Row = Mapping[str, Any]
"""What one stored row offers a condition: field name -> value."""

Evaluator = Callable[[Row], Any]
Number = int | float | Decimal


class QueryError(ConfigError, ValueError):
    """A push's SQL cannot be parsed or evaluated; the message quotes the user's text.

    A :class:`~syncline.errors.ConfigError` (the user's input is wrong: exit 2)."""


def _quoted(text: str) -> str:
    return '"' + text.strip() + '"'


# --------------------------------------------------------------------------- names


_MISSING: Any = object()


def resolve(row: Row, parts: tuple[str, ...]) -> Any:
    """The value a (dotted) name refers to in ``row``, as SQL identifiers find it.

    At every level: the exact key, else the only key equal ignoring case, else
    ``NULL`` (``None``); a level that is not an object is ``NULL`` too. Two keys
    equal ignoring case (and none exact) are a :class:`QueryError`.
    """
    value: Any = row
    for part in parts:
        if not isinstance(value, Mapping):
            return None
        value = _lookup(value, part)
    return value


def _lookup(mapping: Mapping[str, Any], name: str) -> Any:
    value = mapping.get(name, _MISSING)
    if value is _MISSING:
        return _lookup_ignoring_case(mapping, name, name.casefold())
    return value


def _lookup_ignoring_case(mapping: Mapping[str, Any], name: str, folded: str) -> Any:
    key = _key_ignoring_case(mapping, name, folded)
    return None if key is None else mapping[key]


def _key_ignoring_case(mapping: Mapping[str, Any], name: str, folded: str) -> str | None:
    found = [key for key in mapping if isinstance(key, str) and key.casefold() == folded]
    if len(found) > 1:
        listed = " and ".join(_quoted(key) for key in found)
        raise QueryError(f"name {name} is ambiguous: the row has {listed}; quote the one you mean")
    return found[0] if found else None


def _lookup_exactly(mapping: Mapping[str, Any], name: str) -> Any:
    return mapping.get(name)


def _field_reader(parts: tuple[tuple[str, bool], ...]) -> Evaluator:
    """A closure reading one (dotted, maybe quoted) name; the one-part case is inlined
    because it runs once per row for nearly every condition."""
    if len(parts) == 1:
        ((name, quoted),) = parts
        return _quoted_reader(name) if quoted else _plain_reader(name)
    steps = [(name, _lookup_exactly if quoted else _lookup) for name, quoted in parts]

    def read_path(row: Row) -> Any:
        value: Any = row
        for name, lookup in steps:
            if not isinstance(value, Mapping):
                return None
            value = lookup(value, name)
        return value

    return read_path


_KEY_CACHE_SIZE = 64


def _plain_reader(name: str) -> Evaluator:
    """Exact key first; else the key matching ignoring case, remembered per set of keys
    (the rows of one stream share a few), which makes ``status`` cost about what
    ``Status`` does."""
    folded = name.casefold()
    keys_found: dict[tuple[Any, ...], str | None] = {}

    def read(row: Row) -> Any:
        value = row.get(name, _MISSING)
        if value is not _MISSING:
            return value
        keys = tuple(row)
        key = keys_found.get(keys, _MISSING)
        if key is _MISSING:
            key = _key_ignoring_case(row, name, folded)
            if len(keys_found) >= _KEY_CACHE_SIZE:
                keys_found.clear()
            keys_found[keys] = key
        return None if key is None else row[key]

    return read


def _quoted_reader(name: str) -> Evaluator:
    def read_exactly(row: Row) -> Any:
        return row.get(name)

    return read_exactly


# --------------------------------------------------------------------------- values

_NUMERIC_TEXT = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*\Z", re.ASCII)
_INTEGER_TEXT = re.compile(r"\s*[+-]?\d+\s*\Z", re.ASCII)
_CONTAINERS = (dict, list)
_SAME_TYPE_FAST = frozenset({int, str, float})


def _number_of_text(text: str) -> int | Decimal | None:
    """Text that reads as a number, exactly (``'9.5'`` -> ``Decimal('9.5')``); else None."""
    if _INTEGER_TEXT.match(text):
        return int(text)
    if _NUMERIC_TEXT.match(text):
        return Decimal(text.strip())
    return None


def _number(value: Any) -> Number | None:
    """A value as a number for arithmetic: booleans are 1/0, numeric text counts."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, str):
        return _number_of_text(value)
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal)


def _as_floats(x: Number, y: Number) -> tuple[Number, Number] | None:
    """Exact unless a float is involved: then both as floats, as SQL engines do."""
    if isinstance(x, float) or isinstance(y, float):
        try:
            return float(x), float(y)
        except OverflowError:
            return None
    return x, y


def _numbers(a: Any, b: Any) -> tuple[Number, Number] | None:
    """Two values as numbers for a comparison, or None when they do not compare."""
    if isinstance(a, str):
        if not _is_number(b):
            return None
        a = _number_of_text(a)
    elif isinstance(b, str):
        if not _is_number(a):
            return None
        b = _number_of_text(b)
    if not (_is_number(a) and _is_number(b)):
        return None
    return _as_floats(a, b)


def _compare(a: Any, b: Any) -> int | None:
    """-1, 0 or 1, or None (SQL ``NULL``) when either is NULL or the types do not compare."""
    if a is None or b is None:
        return None
    kind = type(a)
    if kind is type(b) and kind in _SAME_TYPE_FAST:
        return int(a > b) - int(a < b)
    if isinstance(a, str) and isinstance(b, str):
        return int(a > b) - int(a < b)
    pair = _numbers(a, b)
    if pair is None:
        return None
    x, y = pair
    try:
        return int(x > y) - int(x < y)
    except ArithmeticError:  # a Decimal NaN
        return None


def _equal(a: Any, b: Any) -> bool | None:
    """SQL ``=``: None when either is NULL or the types do not compare."""
    if a is None or b is None:
        return None
    kind = type(a)
    if kind is type(b) and kind in _SAME_TYPE_FAST:
        return bool(a == b)
    if isinstance(a, _CONTAINERS) or isinstance(b, _CONTAINERS):
        return _equal_structures(a, b)
    order = _compare(a, b)
    return None if order is None else order == 0


def _equal_structures(a: Any, b: Any) -> bool | None:
    if isinstance(a, dict) and isinstance(b, dict):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return bool(a == b)
    return None


def _same(a: Any, b: Any) -> bool:
    """SQL ``IS`` / ``IS NOT DISTINCT FROM``: NULL is the same as NULL, never unknown."""
    if a is None or b is None:
        return a is None and b is None
    return _equal(a, b) is True


def _truth(value: Any) -> bool | None:
    """A value used as a condition: non-zero numbers are true; other text is NULL."""
    if value is None or isinstance(value, bool):
        return value
    number = _number(value)
    if number is None:
        return None
    return bool(number != 0)


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _text(value: Any) -> str:
    """A non-NULL value as text: text as is, ``Decimal`` by its digits, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    return _json_text(value)


def _integer(value: Any) -> int | None:
    """A value as an integer argument (positions, digits): numbers truncate."""
    number = _number(value)
    if number is None:
        return None
    try:
        return int(number)
    except (ValueError, OverflowError, ArithmeticError):
        return None


# --------------------------------------------------------------------------- arithmetic


def _operands(a: Any, b: Any) -> tuple[Number, Number] | None:
    if a is None or b is None:
        return None
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return None
    return _as_floats(x, y)


def _add(x: Any, y: Any) -> Any:
    return x + y


def _subtract(x: Any, y: Any) -> Any:
    return x - y


def _multiply(x: Any, y: Any) -> Any:
    return x * y


def _divide(x: Any, y: Any) -> Any:
    """SQLite's ``/``: integers truncate toward zero; a zero divisor is NULL."""
    if y == 0:
        return None
    if type(x) is int and type(y) is int:
        quotient = abs(x) // abs(y)
        return quotient if (x < 0) == (y < 0) else -quotient
    return x / y


def _remainder(x: Any, y: Any) -> Any:
    """SQLite's ``%``: the remainder takes the dividend's sign; a zero divisor is NULL."""
    if y == 0:
        return None
    if type(x) is int and type(y) is int:
        rest = abs(x) % abs(y)
        return rest if x >= 0 else -rest
    if isinstance(x, float):
        return math.fmod(x, y)
    return x % y  # Decimal's remainder already takes the dividend's sign


def _arithmetic(operation: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        pair = _operands(a, b)
        if pair is None:
            return None
        try:
            return operation(*pair)
        except ArithmeticError:
            return None

    return apply


def _negate(value: Any) -> Any:
    number = _number(value)
    return None if number is None else -number


def _concatenate(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    return _text(a) + _text(b)


# --------------------------------------------------------------------------- functions


def _text_function(method: Callable[[str], Any]) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        return None if value is None else method(_text(value))

    return apply


def _absolute(value: Any) -> Any:
    number = _number(value)
    return None if number is None else abs(number)


def _round(value: Any, digits: Any = 0) -> Any:
    """Half away from zero (SQLite, PostgreSQL), keeping the argument's type."""
    number, places = _number(value), _integer(digits)
    if number is None or places is None:
        return None
    if isinstance(number, int) and places >= 0:
        return number
    exact = Decimal(repr(number)) if isinstance(number, float) else Decimal(number)
    try:
        rounded = exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    except ArithmeticError:  # too many digits to matter, or not finite
        return number
    if isinstance(number, float):
        return float(rounded)
    return int(rounded) if isinstance(number, int) else rounded


def _substring(value: Any, start: Any, length: Any = _MISSING) -> Any:
    """SQLite's ``substr``: 1-based, negative starts count from the end, a negative
    length takes the characters before the start."""
    if value is None or start is None or length is None:
        return None
    text, first = _text(value), _integer(start)
    count = sys.maxsize if length is _MISSING else _integer(length)
    if first is None or count is None:
        return None
    begin, size = _substring_span(len(text), first, count)
    return text[begin : begin + size]


def _substring_span(total: int, first: int, count: int) -> tuple[int, int]:
    backwards = count < 0
    size = -count if backwards else count
    if first < 0:
        first += total
        if first < 0:
            size = max(size + first, 0)
            first = 0
    elif first > 0:
        first -= 1
    elif size > 0:
        size -= 1
    if backwards:
        first -= size
        if first < 0:
            size += first
            first = 0
    return first, max(size, 0)


def _trimmer(position: str) -> Callable[[Any, Any], Any]:
    def trim(value: Any, characters: Any) -> Any:
        if value is None or characters is None:
            return None
        text, strip = _text(value), _text(characters)
        if position == "LEADING":
            return text.lstrip(strip)
        if position == "TRAILING":
            return text.rstrip(strip)
        return text.strip(strip)

    return trim


def _coalesce(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def _null_if(a: Any, b: Any) -> Any:
    return None if _equal(a, b) is True else a


# --------------------------------------------------------------------------- casts

_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "on"})
_FALSE_WORDS = frozenset({"false", "f", "no", "n", "off"})


def _cast_integer(value: Any) -> Any:
    number = _number(value)
    if number is None:
        return None
    try:
        return int(number)
    except (ValueError, OverflowError, ArithmeticError):  # inf, nan
        return None


def _cast_real(value: Any) -> Any:
    number = _number(value)
    if number is None:
        return None
    try:
        return float(number)
    except OverflowError:
        return None


def _cast_numeric(value: Any) -> Any:
    number = _number(value)
    if number is None:
        return None
    return Decimal(repr(number)) if isinstance(number, float) else Decimal(number)


def _cast_text(value: Any) -> Any:
    return None if value is None else _text(value)


def _cast_boolean(value: Any) -> Any:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    return _truth(value)


_T = exp.DataType.Type
_CASTS: dict[Any, Callable[[Any], Any]] = {
    _T.INT: _cast_integer,
    _T.BIGINT: _cast_integer,
    _T.TEXT: _cast_text,
    _T.VARCHAR: _cast_text,
    _T.FLOAT: _cast_real,
    _T.DOUBLE: _cast_real,
    _T.DECIMAL: _cast_numeric,
    _T.BOOLEAN: _cast_boolean,
}


# --------------------------------------------------------------------------- LIKE


@lru_cache(maxsize=256)
def _like_pattern(pattern: str, escape: str | None, ascii_only: bool) -> re.Pattern[str]:
    """``%``/``_`` as a regular expression; ``ascii_only`` is SQLite's ``LIKE``, which
    ignores case for ASCII letters only (``re.ASCII`` narrows ``IGNORECASE`` so)."""
    pieces: list[str] = []
    characters = iter(pattern)
    for character in characters:
        if character == escape:
            pieces.append(re.escape(next(characters, character)))
        elif character == "%":
            pieces.append(".*")
        elif character == "_":
            pieces.append(".")
        else:
            pieces.append(re.escape(character))
    flags = re.DOTALL | re.IGNORECASE | (re.ASCII if ascii_only else 0)
    return re.compile("".join(pieces), flags)


# --------------------------------------------------------------------------- ordering


@total_ordering
class _Descending:
    """Inverts the order of the key it wraps, so ``DESC`` works for text as for numbers."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[int, Any]) -> None:
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.key == other.key

    def __lt__(self, other: _Descending) -> bool:
        return bool(other.key < self.key)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"_Descending({self.key!r})"


def _sortable(value: Any) -> tuple[int, Any]:
    """A non-NULL value's place among all values: numbers < text < the rest (by JSON)."""
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, Decimal):
        return (0, math.nan if value.is_nan() else value)
    if isinstance(value, str):
        return (1, value)
    return (2, _json_text(value))


def _sort_term(
    value_of: Evaluator, descending: bool, nulls_first: bool
) -> Callable[[Row], tuple[int, Any]]:
    """One ORDER BY term as ``(null rank, key)``: NULLs are placed by the rank, before
    the direction is applied, so ``NULLS FIRST`` means first whatever the direction."""
    null_key = (0 if nulls_first else 2, None)

    def ascending(row: Row) -> tuple[int, Any]:
        value = value_of(row)
        return null_key if value is None else (1, _sortable(value))

    def descending_(row: Row) -> tuple[int, Any]:
        value = value_of(row)
        return null_key if value is None else (1, _Descending(_sortable(value)))

    return descending_ if descending else ascending


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Condition:
    """A compiled ``WHERE``: call it with a row; true only when the condition is TRUE."""

    text: str
    _test: Evaluator = dataclasses.field(repr=False, compare=False)
    _names: frozenset[str] = dataclasses.field(default=frozenset(), repr=False, compare=False)

    def __call__(self, row: Row) -> bool:
        try:
            return self._test(row) is True
        except QueryError as error:
            raise QueryError(f"{error} (in {_quoted(self.text)})") from None

    @property
    def names(self) -> frozenset[str]:
        """The field names the condition reads, as written (dotted names whole)."""
        return self._names


@dataclass(frozen=True)
class Ordering:
    """A compiled ``ORDER BY``: :meth:`key` sorts rows with ``sorted`` or ``heapq``."""

    text: str
    _terms: tuple[Callable[[Row], tuple[int, Any]], ...] = dataclasses.field(
        repr=False, compare=False
    )
    _names: frozenset[str] = dataclasses.field(default=frozenset(), repr=False, compare=False)

    def key(self, row: Row) -> tuple[Any, ...]:
        """A sort key comparable with the key of any other row (never a ``TypeError``)."""
        try:
            return tuple(term(row) for term in self._terms)
        except QueryError as error:
            raise QueryError(f"{error} (in {_quoted(self.text)})") from None

    @property
    def names(self) -> frozenset[str]:
        """The field names the ordering reads, as written."""
        return self._names


@dataclass(frozen=True)
class Assignment:
    """One ``SET field = value``: a dotted field sets a nested path."""

    field: str
    _evaluate: Evaluator = dataclasses.field(repr=False, compare=False)
    _names: frozenset[str] = dataclasses.field(default=frozenset(), repr=False, compare=False)

    def value(self, row: Row) -> Any:
        """The new value for ``row`` (a fresh copy of an object or list, safe to keep)."""
        try:
            value = self._evaluate(row)
        except QueryError as error:
            raise QueryError(f"{error} (in SET {self.field})") from None
        return copy.deepcopy(value) if isinstance(value, _CONTAINERS) else value

    @property
    def constant(self) -> bool:
        """True when the value reads no field (the same for every row)."""
        return not self._names


@dataclass(frozen=True)
class UpdateStatement:
    """``UPDATE table SET … [WHERE …] [ORDER BY …] [LIMIT n]``, parsed and compiled."""

    table: str
    assignments: tuple[Assignment, ...]
    where: Condition | None
    order: Ordering | None
    limit: int | None


# --------------------------------------------------------------------------- refusals

_HARMLESS_ARGS = frozenset({"safe", "typed", "is_nvl", "is_null"})
"""Flags sqlglot sets for other dialects' spellings; they change nothing here."""


def _refused_construct(node: exp.Expression) -> str | None:
    """What a user would call a node the evaluator will never support, if it is one."""
    if isinstance(node, exp.Query | exp.Exists):
        return "subquery"
    if isinstance(node, exp.Window):
        return "window function"
    if isinstance(node, exp.AggFunc):
        return f"aggregate function {node.sql_name()}"
    if isinstance(node, exp.Star):
        return "*"
    if isinstance(node, exp.Placeholder | exp.Parameter):
        return f"parameter {node.sql()}"
    if isinstance(node, exp.Identifier) and not node.quoted and node.name.startswith("$"):
        return f"parameter {node.name}"
    return None


def _construct_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return f"function {node.name}"
    if isinstance(node, exp.Func):
        return f"function {node.sql_name()}"
    if isinstance(node, exp.Alias):
        return f"text after the expression ({node.alias!r} read as an alias)"
    return f"{node.key.upper()} ({node.sql()})"


def _unsupported(what: str, context: str, text: str) -> QueryError:
    if what.startswith("function "):
        return QueryError(f"unsupported {what} (in {context} {_quoted(text)})")
    return QueryError(f"unsupported in {context}: {what} (in {_quoted(text)})")


def _set_args(node: exp.Expression) -> set[str]:
    return {
        name
        for name, value in node.args.items()
        if value not in (None, False, []) and name not in _HARMLESS_ARGS
    }


# --------------------------------------------------------------------------- compiler


def _always(value: Any) -> Evaluator:
    def constant(row: Row) -> Any:
        return value

    return constant


def _references_fields(node: exp.Expression) -> bool:
    return node.find(exp.Column) is not None


def _column_parts(node: exp.Column | exp.Dot) -> tuple[tuple[str, bool], ...]:
    identifiers = [part for part in node.parts if isinstance(part, exp.Identifier)]
    if len(identifiers) != len(node.parts):
        raise TypeError("not a plain name")
    return tuple((part.name, bool(part.quoted)) for part in identifiers)


_PREDICATES = (
    exp.And,
    exp.Or,
    exp.Not,
    exp.Predicate,
    exp.Is,
    exp.In,
    exp.Between,
    exp.Like,
    exp.ILike,
    exp.Escape,
    exp.Boolean,
    exp.Null,
)

_FLIPPED: dict[type[exp.Expression], type[exp.Expression]] = {
    exp.LT: exp.GT,
    exp.GT: exp.LT,
    exp.LTE: exp.GTE,
    exp.GTE: exp.LTE,
}
_ORDER_TESTS: dict[type[exp.Expression], Callable[[Any, Any], bool]] = {
    exp.LT: operator.lt,
    exp.GT: operator.gt,
    exp.LTE: operator.le,
    exp.GTE: operator.ge,
}


class _Compiler:
    """Turns a sqlglot tree into closures, collecting the names it reads.

    Every handler checks that the node carries no argument it does not
    understand, so a variant sqlglot parses (``LIKE ANY``, ``BETWEEN
    SYMMETRIC``, …) is refused rather than evaluated wrongly.
    """

    def __init__(self, context: str, text: str) -> None:
        self.context = context
        self.text = text
        self.names: set[str] = set()
        self._handlers: dict[type[exp.Expression], Callable[[Any], Evaluator]] = {
            exp.Paren: lambda node: self.compile(node.this),
            exp.Literal: self._literal,
            exp.Boolean: lambda node: _always(bool(node.this)),
            exp.Null: lambda node: _always(None),
            exp.Column: self._column,
            exp.Dot: self._column,
            exp.And: self._and,
            exp.Or: self._or,
            exp.Not: self._not,
            exp.EQ: self._equality,
            exp.NEQ: self._equality,
            exp.LT: self._ordering_comparison,
            exp.LTE: self._ordering_comparison,
            exp.GT: self._ordering_comparison,
            exp.GTE: self._ordering_comparison,
            exp.Is: self._is,
            exp.NullSafeEQ: self._null_safe,
            exp.NullSafeNEQ: self._null_safe,
            exp.In: self._in,
            exp.Between: self._between,
            exp.Like: self._like,
            exp.ILike: self._like,
            exp.Escape: self._escape,
            exp.Add: self._binary(_arithmetic(_add)),
            exp.Sub: self._binary(_arithmetic(_subtract)),
            exp.Mul: self._binary(_arithmetic(_multiply)),
            exp.Div: self._binary(_arithmetic(_divide)),
            exp.Mod: self._binary(_arithmetic(_remainder)),
            exp.DPipe: self._binary(_concatenate),
            exp.Neg: self._unary(_negate),
            exp.Case: self._case,
            exp.Coalesce: self._coalesce,
            exp.Nullif: self._binary(_null_if),
            exp.Lower: self._unary(_text_function(str.lower)),
            exp.Upper: self._unary(_text_function(str.upper)),
            exp.Length: self._unary(_text_function(len)),
            exp.Abs: self._unary(_absolute),
            exp.Round: self._round,
            exp.Trim: self._trim,
            exp.Substring: self._substring,
            exp.Cast: self._cast,
        }

    # -- entry points

    def check(self, node: exp.Expression) -> None:
        """Refuse, outermost first, what no handler will ever accept."""
        for child in node.walk(bfs=True):
            what = _refused_construct(child) if isinstance(child, exp.Expression) else None
            if what is not None:
                raise self.unsupported(what)

    def compile(self, node: exp.Expression) -> Evaluator:
        """A closure computing ``node``; a subtree that reads no field is folded."""
        handler = self._handlers.get(type(node))
        if handler is None:
            raise self.unsupported(_construct_name(node))
        evaluate = handler(node)
        if isinstance(node, exp.Literal | exp.Boolean | exp.Null) or _references_fields(node):
            return evaluate
        return _always(evaluate({}))

    def truth(self, node: exp.Expression) -> Evaluator:
        """``node`` as a condition: TRUE, FALSE or NULL (``None``)."""
        evaluate = self.compile(node)
        if isinstance(node.unnest(), _PREDICATES):
            return evaluate

        def as_truth(row: Row) -> bool | None:
            return _truth(evaluate(row))

        return as_truth

    def unsupported(self, what: str) -> QueryError:
        return _unsupported(what, self.context, self.text)

    # -- helpers

    def _allow(self, node: exp.Expression, *names: str) -> None:
        extra = _set_args(node) - set(names)
        if extra:
            raise self.unsupported(f"{node.key.upper()} with {', '.join(sorted(extra))}")

    def _constant(self, node: exp.Expression) -> tuple[bool, Any]:
        """(True, value) when ``node`` reads no field."""
        if _references_fields(node):
            return False, None
        return True, self.compile(node)({})

    def _binary(self, apply: Callable[[Any, Any], Any]) -> Callable[[Any], Evaluator]:
        def build(node: exp.Expression) -> Evaluator:
            self._allow(node, "this", "expression")
            left, right = self.compile(node.this), self.compile(node.expression)

            def binary(row: Row) -> Any:
                return apply(left(row), right(row))

            return binary

        return build

    def _unary(self, apply: Callable[[Any], Any]) -> Callable[[Any], Evaluator]:
        def build(node: exp.Expression) -> Evaluator:
            self._allow(node, "this")
            return _applied(apply, self.compile(node.this))

        return build

    def _arguments(self, nodes: Iterable[exp.Expression | None]) -> list[Evaluator]:
        return [self.compile(node) for node in nodes if node is not None]

    # -- leaves

    def _literal(self, node: exp.Literal) -> Evaluator:
        if node.is_string:
            return _always(node.this)
        text = node.this
        return _always(int(text) if _INTEGER_TEXT.match(text) else float(text))

    def _column(self, node: exp.Column | exp.Dot) -> Evaluator:
        try:
            parts = _column_parts(node)
        except TypeError:
            raise self.unsupported(_construct_name(node)) from None
        self.names.add(".".join(name for name, _ in parts))
        return _field_reader(parts)

    # -- logic

    def _and(self, node: exp.And) -> Evaluator:
        self._allow(node, "this", "expression")
        left, right = self.truth(node.this), self.truth(node.expression)

        def both(row: Row) -> bool | None:
            first = left(row)
            if first is False:
                return False
            second = right(row)
            if second is False:
                return False
            if first is None or second is None:
                return None
            return True

        return both

    def _or(self, node: exp.Or) -> Evaluator:
        self._allow(node, "this", "expression")
        left, right = self.truth(node.this), self.truth(node.expression)

        def either(row: Row) -> bool | None:
            first = left(row)
            if first is True:
                return True
            second = right(row)
            if second is True:
                return True
            if first is None or second is None:
                return None
            return False

        return either

    def _not(self, node: exp.Not) -> Evaluator:
        self._allow(node, "this")
        inner = self.truth(node.this)

        def negated(row: Row) -> bool | None:
            value = inner(row)
            return None if value is None else not value

        return negated

    # -- comparisons

    def _equality(self, node: exp.EQ | exp.NEQ) -> Evaluator:
        self._allow(node, "this", "expression")
        want = isinstance(node, exp.EQ)
        left_node, right_node = node.this, node.expression
        if not _references_fields(left_node):
            left_node, right_node = right_node, left_node
        left = self.compile(left_node)
        is_constant, value = self._constant(right_node)
        if is_constant:
            return _equals_constant(left, value, want)
        right = self.compile(right_node)

        def equals(row: Row) -> bool | None:
            result = _equal(left(row), right(row))
            return None if result is None else result is want

        return equals

    def _ordering_comparison(self, node: exp.Expression) -> Evaluator:
        self._allow(node, "this", "expression")
        kind: type[exp.Expression] = type(node)
        left_node, right_node = node.this, node.expression
        if not _references_fields(left_node):
            left_node, right_node, kind = right_node, left_node, _FLIPPED[kind]
        test = _ORDER_TESTS[kind]
        left = self.compile(left_node)
        is_constant, value = self._constant(right_node)
        if is_constant:
            return _compares_to_constant(left, value, test)
        right = self.compile(right_node)

        def compares(row: Row) -> bool | None:
            order = _compare(left(row), right(row))
            return None if order is None else test(order, 0)

        return compares

    def _is(self, node: exp.Is) -> Evaluator:
        self._allow(node, "this", "expression", "negate")
        value_of, target = self.compile(node.this), node.expression
        want = not node.args.get("negate")
        if isinstance(target, exp.Null):
            return _test(value_of, lambda value: (value is None) is want)
        if isinstance(target, exp.Boolean):
            wanted = bool(target.this)
            return _test(value_of, lambda value: (_truth(value) is wanted) is want)
        other = self.compile(target)

        def same(row: Row) -> bool:
            return _same(value_of(row), other(row)) is want

        return same

    def _null_safe(self, node: exp.NullSafeEQ | exp.NullSafeNEQ) -> Evaluator:
        self._allow(node, "this", "expression")
        left, right = self.compile(node.this), self.compile(node.expression)
        want = isinstance(node, exp.NullSafeEQ)

        def same(row: Row) -> bool:
            return _same(left(row), right(row)) is want

        return same

    def _in(self, node: exp.In) -> Evaluator:
        self._allow(node, "this", "expressions")
        value_of = self.compile(node.this)
        items = node.expressions
        constants = [self._constant(item) for item in items]
        if items and all(is_constant for is_constant, _ in constants):
            return _in_constants(value_of, [value for _, value in constants])
        return _in_expressions(value_of, [self.compile(item) for item in items])

    def _between(self, node: exp.Between) -> Evaluator:
        self._allow(node, "this", "low", "high")
        value_of = self.compile(node.this)
        low, high = self.compile(node.args["low"]), self.compile(node.args["high"])

        def between(row: Row) -> bool | None:
            value = value_of(row)
            above, below = _compare(value, low(row)), _compare(value, high(row))
            if (above is not None and above < 0) or (below is not None and below > 0):
                return False
            if above is None or below is None:
                return None
            return True

        return between

    # -- LIKE

    def _like(self, node: exp.Like | exp.ILike, escape: str | None = None) -> Evaluator:
        self._allow(node, "this", "expression", "negate")
        ascii_only = isinstance(node, exp.Like)
        want = not node.args.get("negate")
        value_of = self.compile(node.this)
        is_constant, pattern = self._constant(node.expression)
        if is_constant:
            if pattern is None:
                return _always(None)
            regex = _like_pattern(_text(pattern), escape, ascii_only)
            return _predicate(
                value_of, lambda value: (regex.fullmatch(_text(value)) is not None) is want
            )
        pattern_of = self.compile(node.expression)

        def like(row: Row) -> bool | None:
            value, pattern = value_of(row), pattern_of(row)
            if value is None or pattern is None:
                return None
            regex = _like_pattern(_text(pattern), escape, ascii_only)
            return (regex.fullmatch(_text(value)) is not None) is want

        return like

    def _escape(self, node: exp.Escape) -> Evaluator:
        self._allow(node, "this", "expression")
        is_constant, escape = self._constant(node.expression)
        if not is_constant or not isinstance(escape, str) or len(escape) != 1:
            raise self.unsupported(f"ESCAPE other than one character ({node.expression.sql()})")
        if not isinstance(node.this, exp.Like | exp.ILike):
            raise self.unsupported(_construct_name(node))
        return self._like(node.this, escape)

    # -- CASE and functions

    def _case(self, node: exp.Case) -> Evaluator:
        self._allow(node, "this", "ifs", "default")
        for branch in node.args["ifs"]:
            if not isinstance(branch, exp.If):
                raise self.unsupported(_construct_name(branch))
            self._allow(branch, "this", "true")
        default_node = node.args.get("default")
        default = self.compile(default_node) if default_node is not None else _always(None)
        results = [self.compile(branch.args["true"]) for branch in node.args["ifs"]]
        if node.this is not None:
            operand = self.compile(node.this)
            matches = [self.compile(branch.this) for branch in node.args["ifs"]]
            return _simple_case(operand, list(zip(matches, results, strict=True)), default)
        tests = [self.truth(branch.this) for branch in node.args["ifs"]]
        return _searched_case(list(zip(tests, results, strict=True)), default)

    def _coalesce(self, node: exp.Coalesce) -> Evaluator:
        self._allow(node, "this", "expressions")
        arguments = self._arguments([node.this, *node.expressions])
        return _call(_coalesce, arguments)

    def _round(self, node: exp.Round) -> Evaluator:
        self._allow(node, "this", "decimals")
        return _call(_round, self._arguments([node.this, node.args.get("decimals")]))

    def _trim(self, node: exp.Trim) -> Evaluator:
        self._allow(node, "this", "expression", "position")
        characters = node.expression
        arguments = self._arguments([node.this])
        arguments.append(self.compile(characters) if characters is not None else _always(" "))
        return _call(_trimmer(str(node.args.get("position") or "BOTH").upper()), arguments)

    def _substring(self, node: exp.Substring) -> Evaluator:
        self._allow(node, "this", "start", "length")
        if node.args.get("start") is None:
            raise self.unsupported("SUBSTRING without a start")
        names = ("this", "start", "length")
        return _call(_substring, self._arguments(node.args.get(name) for name in names))

    def _cast(self, node: exp.Cast) -> Evaluator:
        self._allow(node, "this", "to")
        target = node.args["to"]
        convert = _CASTS.get(target.this)
        if convert is None or target.expressions:
            raise self.unsupported(f"CAST to {target.sql()}")
        return _applied(convert, self.compile(node.this))


def _applied(function: Callable[[Any], Any], argument: Evaluator) -> Evaluator:
    def unary(row: Row) -> Any:
        return function(argument(row))

    return unary


def _call(function: Callable[..., Any], arguments: list[Evaluator]) -> Evaluator:
    def call(row: Row) -> Any:
        return function(*[argument(row) for argument in arguments])

    return call


def _predicate(value_of: Evaluator, test: Callable[[Any], bool]) -> Evaluator:
    """A test on one value that is NULL when the value is NULL."""

    def predicate(row: Row) -> bool | None:
        value = value_of(row)
        return None if value is None else test(value)

    return predicate


def _test(value_of: Evaluator, test: Callable[[Any], bool]) -> Evaluator:
    """A test on one value that is never NULL (``IS``)."""

    def always_known(row: Row) -> bool:
        return test(value_of(row))

    return always_known


def _equals_constant(left: Evaluator, value: Any, want: bool) -> Evaluator:
    """``field = constant``: the hot path of most conditions, so a value of the constant's
    own type is compared without the general rules."""
    if value is None:
        return _always(None)
    kind = type(value)
    fast = kind in _SAME_TYPE_FAST

    def equals(row: Row) -> bool | None:
        found = left(row)
        if fast and type(found) is kind:
            return (found == value) is want
        result = _equal(found, value)
        return None if result is None else result is want

    return equals


def _compares_to_constant(
    left: Evaluator, value: Any, test: Callable[[Any, Any], bool]
) -> Evaluator:
    if value is None:
        return _always(None)
    kind = type(value)
    fast = kind in _SAME_TYPE_FAST

    def compares(row: Row) -> bool | None:
        found = left(row)
        if fast and type(found) is kind:
            return test(found, value)
        order = _compare(found, value)
        return None if order is None else test(order, 0)

    return compares


def _in_constants(value_of: Evaluator, values: list[Any]) -> Evaluator:
    """``x IN (literals)``: a set lookup when the value has the literals' one type."""
    kinds = {type(value) for value in values}
    kind = kinds.pop() if len(kinds) == 1 else None
    members = frozenset(values) if kind in _SAME_TYPE_FAST else frozenset()

    def contained(row: Row) -> bool | None:
        value = value_of(row)
        if members and type(value) is kind:
            return value in members
        return _in_values(value, values)

    return contained


def _in_values(value: Any, values: list[Any]) -> bool | None:
    if not values:
        return False
    if value is None:
        return None
    unknown = False
    for candidate in values:
        result = _equal(value, candidate)
        if result:
            return True
        unknown = unknown or result is None
    return None if unknown else False


def _in_expressions(value_of: Evaluator, items: list[Evaluator]) -> Evaluator:
    def contained(row: Row) -> bool | None:
        return _in_values(value_of(row), [item(row) for item in items])

    return contained


def _simple_case(
    operand: Evaluator, branches: list[tuple[Evaluator, Evaluator]], default: Evaluator
) -> Evaluator:
    def case(row: Row) -> Any:
        value = operand(row)
        for match, result in branches:
            if _equal(value, match(row)) is True:
                return result(row)
        return default(row)

    return case


def _searched_case(branches: list[tuple[Evaluator, Evaluator]], default: Evaluator) -> Evaluator:
    def case(row: Row) -> Any:
        for test, result in branches:
            if test(row) is True:
                return result(row)
        return default(row)

    return case


# --------------------------------------------------------------------------- parsing


def _parse_error(context: str, text: str, error: SqlglotError) -> QueryError:
    detail = str(error)
    if isinstance(error, ParseError) and error.errors:
        first = error.errors[0]
        detail = f"{first.get('description')} at column {first.get('col')}"
    return QueryError(f"cannot parse {context} {_quoted(text)}: {detail}")


def _parse_statements(context: str, text: str, noun: str) -> list[exp.Expression]:
    if not text.strip():
        raise QueryError(f"{context} is empty")
    try:
        parsed = sqlglot.parse(text)
    except SqlglotError as error:
        raise _parse_error(context, text, error) from None
    statements = [statement for statement in parsed if isinstance(statement, exp.Expression)]
    if not statements:
        raise QueryError(f"{context} is empty")
    if len(statements) > 1:
        raise QueryError(
            f"{context} must be a single {noun}, not {len(statements)} separated by ';': "
            f"{_quoted(text)}"
        )
    return statements


def _parse_expression(context: str, text: str) -> exp.Expression:
    (node,) = _parse_statements(context, text, "expression")
    if isinstance(node, exp.Alias):
        raise _unsupported(_construct_name(node), context, text)
    if not isinstance(node, exp.Condition | exp.Subquery):
        kind = node.key.upper()
        raise QueryError(
            f"{context} must be an expression, not a {kind} statement: {_quoted(text)}"
        )
    return node


def _condition(node: exp.Expression, context: str, text: str, shown: str) -> Condition:
    compiler = _Compiler(context, text)
    compiler.check(node)
    test = compiler.truth(node)
    return Condition(shown, test, frozenset(compiler.names))


def _ordering(order: exp.Order, context: str, text: str, shown: str) -> Ordering:
    compiler = _Compiler(context, text)
    compiler.check(order)
    terms = []
    for term in order.expressions:
        if not isinstance(term, exp.Ordered):  # pragma: no cover - sqlglot always wraps
            raise compiler.unsupported(_construct_name(term))
        compiler._allow(term, "this", "desc", "nulls_first")
        value_of = compiler.compile(term.this)
        descending = bool(term.args.get("desc"))
        terms.append(_sort_term(value_of, descending, bool(term.args.get("nulls_first"))))
    return Ordering(shown, tuple(terms), frozenset(compiler.names))


def parse_condition(text: str) -> Condition:
    """``--where``: one SQL expression, compiled; see the module for its rules."""
    return _condition(_parse_expression("--where", text), "--where", text, text)


def parse_ordering(text: str) -> Ordering:
    """``--order``: ``Name``, ``Modified DESC, Code``, ``lower(Name) ASC NULLS LAST``."""
    if not text.strip():
        raise QueryError("--order is empty")
    try:
        order = sqlglot.parse_one("ORDER BY " + text, into=exp.Order)
    except SqlglotError as error:
        raise _parse_error("--order", text, error) from None
    return _ordering(order, "--order", text, text)


def _json_or_text(raw: str) -> Any:
    """``1`` -> 1, ``true`` -> True, ``"x"`` -> "x", ``{"a":1}`` -> dict; else the text."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except ValueError:
        return raw


def _refuse_constant(word: str) -> Any:
    raise ValueError(word)  # NaN and Infinity are not JSON: keep them as text


def _check_field(context: str, field: str, text: str) -> None:
    if not field:
        raise QueryError(f"{context} needs a field name before '=': {_quoted(text)}")
    if any(not part.strip() for part in field.split(".")):
        raise QueryError(f"{context} field {_quoted(field)} has an empty part")


def parse_assignment(text: str) -> Assignment:
    """``--set Field=value``: the value is JSON when it parses as JSON, else the text."""
    name, separator, raw = text.partition("=")
    if not separator:
        raise QueryError(f"--set needs FIELD=VALUE, got {_quoted(text)}")
    field = name.strip()
    _check_field("--set", field, text)
    return Assignment(field, _always(_json_or_text(raw.strip())), frozenset())


# --------------------------------------------------------------------------- UPDATE

_UPDATE_PARTS = {
    "from_": "UPDATE … FROM",
    "returning": "RETURNING",
    "with_": "WITH",
    "joins": "JOIN",
    "options": "UPDATE options",
}


def _update_statement(sql: str) -> exp.Update:
    (statement,) = _parse_statements("syncline sql", sql, "statement")
    if not isinstance(statement, exp.Update):
        kind = statement.key.upper()
        raise QueryError(f"only UPDATE is supported, not {kind}: {_quoted(sql)}")
    extra = _set_args(statement) - {"this", "expressions", "where", "order", "limit"}
    if extra:
        what = ", ".join(_UPDATE_PARTS.get(name, name.upper()) for name in sorted(extra))
        raise QueryError(f"unsupported in UPDATE: {what} (in {_quoted(sql)})")
    return statement


def _table_name(table: exp.Expression, sql: str) -> str:
    if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
        raise QueryError(f"UPDATE needs a table name: {_quoted(sql)}")
    extra = _set_args(table) - {"this", "db", "catalog"}
    if extra:
        what = "JOIN" if "joins" in extra else "table alias" if "alias" in extra else "table"
        raise QueryError(f"unsupported in UPDATE: {what} {table.sql()} (in {_quoted(sql)})")
    return ".".join(part.name for part in table.parts)


def _set_target(target: exp.Expression, sql: str) -> str:
    if not isinstance(target, exp.Column | exp.Dot):
        raise QueryError(f"SET needs a field name, not {target.sql()} (in {_quoted(sql)})")
    try:
        parts = _column_parts(target)
    except TypeError:
        raise QueryError(
            f"SET needs a field name, not {target.sql()} (in {_quoted(sql)})"
        ) from None
    if any("." in name for name, _ in parts):
        raise QueryError(f"SET field {target.sql()} has a '.' inside quotes (in {_quoted(sql)})")
    return ".".join(name for name, _ in parts)


def _assignment(node: exp.Expression, sql: str) -> Assignment:
    if not isinstance(node, exp.EQ):
        raise QueryError(f"SET needs field = value, not {node.sql()} (in {_quoted(sql)})")
    field = _set_target(node.this, sql)
    compiler = _Compiler("SET", sql)
    compiler.check(node.expression)
    evaluate = compiler.compile(node.expression)
    return Assignment(field, evaluate, frozenset(compiler.names))


def _unique(assignments: tuple[Assignment, ...], sql: str) -> None:
    seen: dict[str, str] = {}
    for assignment in assignments:
        folded = assignment.field.casefold()
        if folded in seen:
            raise QueryError(
                f"SET names {seen[folded]} and {assignment.field} (the same field): {_quoted(sql)}"
            )
        seen[folded] = assignment.field


def _limit(limit: exp.Expression | None, sql: str) -> int | None:
    if limit is None:
        return None
    count = limit.expression
    if _set_args(limit) - {"expression"}:
        raise QueryError(f"unsupported in UPDATE: LIMIT with OFFSET (in {_quoted(sql)})")
    if not (isinstance(count, exp.Literal) and not count.is_string and count.this.isdigit()):
        raise QueryError(
            f"LIMIT must be a non-negative integer, not {count.sql()} (in {_quoted(sql)})"
        )
    return int(count.this)


def parse_update(sql: str) -> UpdateStatement:
    """``UPDATE table SET a = expr[, …] [WHERE …] [ORDER BY …] [LIMIT n]``; nothing else."""
    statement = _update_statement(sql)
    table = _table_name(statement.this, sql)
    assignments = tuple(_assignment(node, sql) for node in statement.expressions)
    _unique(assignments, sql)
    where_clause = statement.args.get("where")
    where = None
    if where_clause is not None:
        where = _condition(where_clause.this, "WHERE", sql, where_clause.this.sql())
    order_clause = statement.args.get("order")
    order = None
    if order_clause is not None:
        shown = ", ".join(term.sql() for term in order_clause.expressions)
        order = _ordering(order_clause, "ORDER BY", sql, shown)
    return UpdateStatement(
        table, assignments, where, order, _limit(statement.args.get("limit"), sql)
    )
