"""Reading and writing files, once for every package above: text and JSON lines, atomic writes."""

from ragkit.io.atomic import atomic_path, atomic_write_text, leftovers, swap_into_place
from ragkit.io.files import (
    TEXT_SUFFIXES,
    inner_suffix,
    is_hub_id,
    json_lines,
    json_value,
    open_text,
    read_json_lines,
    write_error,
)
from ragkit.io.records import from_known_fields
from ragkit.io.text import displayable_path, surrogate_at

__all__ = [
    "TEXT_SUFFIXES",
    "atomic_path",
    "atomic_write_text",
    "displayable_path",
    "from_known_fields",
    "inner_suffix",
    "is_hub_id",
    "json_lines",
    "json_value",
    "leftovers",
    "open_text",
    "read_json_lines",
    "surrogate_at",
    "swap_into_place",
    "write_error",
]
