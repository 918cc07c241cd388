"""The objects the mock serves, shared by its data generators and its routes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

QUESTIONABLE, SUBSTITUTED, ANNOTATED = 1, 2, 4  # bits of a value's flags (``values.Block.flags``)


@dataclass(frozen=True, slots=True)
class Point:
    """A PI point of the mock Data Archive, with how its data are generated."""

    id: int  # the PI point id (Int32 in the WebID)
    name: str
    point_type: str  # Float32 | Float64 | Int32 | Digital | String
    point_class: str  # classic | base
    descriptor: str
    units: str
    digital_set: str  # the enumeration set of a Digital point, "" otherwise
    zero: float
    span: float
    step: bool
    future: bool  # holds values beyond "now"
    point_source: str
    display_digits: int
    sampling: str  # 1s | 5s | 60s | irregular
    late: bool  # some of its values become visible only after a lag
    multi: bool  # some of its timestamps hold several values


@dataclass(frozen=True, slots=True)
class Attribute:
    """An AF attribute of an element (owner_kind "E") or an event frame (owner_kind "F")."""

    guid: uuid.UUID
    owner_guid: uuid.UUID
    owner_kind: str
    name: str
    path: str  # \\AFSERVER\Database\Element\...|Attribute
    type: str  # Double | Single | Int32 | String | EnumerationValue | ...
    units: str
    categories: tuple[str, ...]
    point_id: int | None  # the PI point of a "PI Point" data reference, None for static attributes
    static_value: object  # the value of an attribute without a data reference


@dataclass(frozen=True, slots=True)
class Stream:
    """What a stream WebId names: a point, or an attribute (over a point, or static)."""

    name: str
    path: str
    units: str
    point: Point | None
    attribute: Attribute | None
    context: tuple[int, int] | None  # an event frame's time range

    @property
    def static(self) -> bool:
        return self.point is None
