"""Reading and writing files, once for every package above: text and JSON lines, atomic writes."""

from ragkit.io.atomic import atomic_path, atomic_write_text, leftovers, swap_into_place
from ragkit.io.files import (
    TEXT_SUFFIXES,
    inner_suffix,
    is_hub_id,
    json_lines,
    open_text,
    read_json_lines,
)
from ragkit.io.records import from_known_fields

__all__ = [
    "TEXT_SUFFIXES",
    "atomic_path",
    "atomic_write_text",
    "from_known_fields",
    "inner_suffix",
    "is_hub_id",
    "json_lines",
    "leftovers",
    "open_text",
    "read_json_lines",
    "swap_into_place",
]
