"""Search filters as data, compiled to one SQL condition with bound parameters (never string-built).

A filter is a dict; its entries must all hold (AND):

    {"path": "guides/*.md"}                      a string: a glob (`*`, `?`, `[...]`), exact otherwise
    {"lang": "en", "year": 2021}                 a number or bool: equality
    {"year": {"$gte": 2000, "$lt": 2010}}        $eq $ne $gt $gte $lt $lte $in $nin $glob
    {"lang": {"$in": ["en", "de"]}}
    {"$or": [{"lang": "en"}, {"year": {"$gt": 2020}}]}    $and / $or over lists of filters

Fields are `path`, `doc_id` and `title` (the chunk's columns) or any metadata field (a document's
other JSON or CSV fields). The docstore evaluates the condition, so the search ranks only the
chunks that match: a selective filter returns exactly the matching top k.
"""

from __future__ import annotations

import json
from typing import Any

from ragkit.errors import RagkitError
from ragkit.io import surrogate_at

COLUMNS = ("path", "doc_id", "title")
COMPARISONS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
OPERATORS = (*COMPARISONS, "$in", "$nin", "$glob")
Scalar = str | int | float | bool
MAX_DEPTH = 64  # $and / $or nested deeper is refused before Python's or SQLite's own limits


def compile_filter(filter: dict[str, Any], _depth: int = 0) -> tuple[str, list[Any]]:
    """(SQL condition over the chunks table, its parameters) for a filter; ("1", []) for an empty one."""
    if _depth > MAX_DEPTH:
        raise RagkitError(
            f"the `filter` is too complex: $and / $or nest deeper than {MAX_DEPTH} levels; flatten it"
        )
    if not isinstance(filter, dict):
        raise RagkitError(
            "`filter` must be a dict, e.g. {'path': 'docs/*.md'} or {'year': {'$gte': 2020}}, "
            f"got {type(filter).__name__}"
        )
    parts, params = [], []
    for key, value in filter.items():
        if key in ("$and", "$or"):
            sql, values = _combine(key, value, _depth)
        elif not isinstance(key, str) or key.startswith("$"):
            raise RagkitError(f"`filter` has an unknown operator {key!r}: use $and or $or, or a field name")
        elif (at := surrogate_at(key)) is not None:
            raise RagkitError(
                f"`filter` field {key!r} holds a lone surrogate at character {at}, not valid Unicode"
            )
        else:
            sql, values = _condition(_field(key), key, value)
        parts.append(sql)
        params += values
    return (" AND ".join(f"({p})" for p in parts) or "1"), params


def _combine(operator: str, filters: Any, depth: int) -> tuple[str, list[Any]]:
    if not isinstance(filters, list) or not filters:
        raise RagkitError(f"`filter` {operator} takes a non-empty list of filters, got {filters!r}")
    compiled = [compile_filter(f, depth + 1) for f in filters]
    joiner = " AND " if operator == "$and" else " OR "
    return joiner.join(f"({sql})" for sql, _ in compiled), [p for _, params in compiled for p in params]


# A row whose metadata SQLite cannot parse (NaN or Infinity, which older ragkit versions stored) has
# no metadata fields: it matches no metadata condition, and the filter still runs.
_METADATA = "json_extract(CASE WHEN json_valid(metadata) THEN metadata END, ?)"


def _field(key: str) -> str:
    """The SQL expression of a field: a column, or the metadata JSON's value (its path bound)."""
    return key if key in COLUMNS else _METADATA


def _condition(field: str, key: str, value: Any) -> tuple[str, list[Any]]:
    path = [] if key in COLUMNS else [f'$."{key}"']
    if isinstance(value, str) and _is_scalar(value):
        return f"{field} GLOB ?", [*path, value]
    if _is_scalar(value):
        return f"{field} = ?", [*path, value]
    if not isinstance(value, dict) or not value:
        raise RagkitError(
            f"`filter` value for {key!r} must be a string (glob), a number, a bool or a dict of "
            f"operators ({', '.join(OPERATORS)}), got {value!r}"
        )
    parts, params = [], []
    for operator, operand in value.items():
        if operator in COMPARISONS:
            if not _is_scalar(operand):
                raise RagkitError(f"`filter` {key!r} {operator} takes a string or number, got {operand!r}")
            parts.append(f"{field} {COMPARISONS[operator]} ?")
            params += [*path, operand]
        elif operator in ("$in", "$nin"):
            if not isinstance(operand, list) or not all(_is_scalar(v) for v in operand):
                raise RagkitError(
                    f"`filter` {key!r} {operator} takes a list of strings or numbers, got {operand!r}"
                )
            # One bound parameter (a JSON array), however long the list: no "too many SQL variables".
            negate = "NOT " if operator == "$nin" else ""
            parts.append(f"{field} {negate}IN (SELECT value FROM json_each(?))")
            params += [*path, json.dumps(operand)]
        elif operator == "$glob":
            if not isinstance(operand, str) or not _is_scalar(operand):
                raise RagkitError(f"`filter` {key!r} $glob takes a string, got {operand!r}")
            parts.append(f"{field} GLOB ?")
            params += [*path, operand]
        else:
            raise RagkitError(
                f"`filter` has an unknown operator {operator!r} for {key!r}: use {', '.join(OPERATORS)}"
            )
    return " AND ".join(parts), params


def _is_scalar(value: Any) -> bool:
    if not isinstance(value, Scalar):
        return False
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise RagkitError(f"`filter` value {value} is out of range: SQLite's integers are 64-bit")
    if isinstance(value, str) and (at := surrogate_at(value)) is not None:
        raise RagkitError(
            f"`filter` value {value!r} holds a lone surrogate at character {at}, not valid Unicode"
        )
    return True
