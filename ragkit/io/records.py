"""Dataclasses read back from the JSON objects they were written as."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def from_known_fields(cls: type[T], data: dict[str, Any]) -> T:
    """`cls(**data)` with the keys `cls` has no field for left out: a file written by an older or
    newer ragkit (a field since added or dropped) still reads. A required field missing is a TypeError."""
    return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
