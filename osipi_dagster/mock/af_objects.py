"""The objects of the mock's AF asset model: element templates and attribute templates placed in a
database, element categories, databases, elements and attribute trees, with the deterministic ids they are
built from and the walks over their trees.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from osipi_dagster.mock.af_catalog import AttributeSpec, TemplateSpec
from osipi_dagster.mock.model import Attribute, Point

# Deterministic hashing (``hash()`` is salted per process, so it cannot drive the data).


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of ``parts`` that is the same in every process and on every machine."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


def stable_guid(*parts: object) -> uuid.UUID:
    """A random-looking (version 4) GUID that is a pure function of ``parts``."""
    return uuid.UUID(bytes=hashlib.blake2b(repr(parts).encode(), digest_size=16).digest(), version=4)


def path_key(path: str) -> str:
    """The lookup key of an AF path: upper case without the leading ``\\\\`` (as PathOnly WebIDs carry it)."""
    return path.lstrip("\\").upper()


@dataclass(frozen=True, eq=False)
class AttributeTemplate:
    """An attribute template of an element template (its children are nested attribute templates)."""

    guid: uuid.UUID
    spec: AttributeSpec
    template: ElementTemplate | None  # set right after construction (the template owns its attributes)
    path: str  # \\AF\DB\ElementTemplates[Pump]|Rated Capacity|Minimum
    parent: AttributeTemplate | None
    children: tuple[AttributeTemplate, ...]


@dataclass(eq=False)
class ElementTemplate:
    """An element or event-frame template placed in one database."""

    guid: uuid.UUID
    database: Database
    spec: TemplateSpec
    path: str
    lineage: tuple[str, ...]  # upper-case names: itself, its base, its base's base, ...
    attributes: tuple[AttributeTemplate, ...]  # its own top-level attribute templates
    inherited: tuple[AttributeTemplate, ...]  # base templates' first, then its own

    @property
    def name(self) -> str:
        return self.spec.name

    def derives_from(self, name: str) -> bool:
        """Is this template ``name`` or derived from it (case-insensitive)?"""
        return name.upper() in self.lineage


@dataclass(frozen=True, eq=False)
class Category:
    """An element category (event frames use element categories too)."""

    guid: uuid.UUID
    database: Database
    name: str
    path: str  # \\AF\DB\CategoriesElement[Name]


@dataclass(eq=False)
class Database:
    """An AF asset database."""

    index: int
    guid: uuid.UUID
    name: str
    description: str
    path: str
    templates: dict[str, ElementTemplate] = field(default_factory=dict)  # upper-case name -> template
    categories: dict[str, Category] = field(default_factory=dict)  # upper-case name -> category
    roots: list[Element] = field(default_factory=list)
    elements: list[Element] = field(default_factory=list)  # every element, depth-first


@dataclass(eq=False, slots=True)
class Element:
    """An AF element; ``points`` indexes the archive's points that are its PI Point attributes."""

    guid: uuid.UUID
    name: str
    path: str
    database: Database
    parent: Element | None
    template: ElementTemplate
    categories: tuple[str, ...]
    description: str
    points: tuple[int, ...]  # indexes into the archive's points
    values: dict[str, object]  # static attribute values fixed at build (the others come from hashes)
    children: list[Element] = field(default_factory=list)
    unit: Element | None = None  # its process unit (itself for a unit), for event frame references


@dataclass(frozen=True, eq=False, slots=True)
class AttributeNode:
    """An attribute with what its JSON needs beyond ``model.Attribute``."""

    attribute: Attribute
    parent: AttributeNode | None
    children: tuple[AttributeNode, ...]
    template: AttributeTemplate | None
    point: Point | None
    hidden: bool
    excluded: bool
    trait: str


class AttributeSlot(NamedTuple):  # a tuple: a search makes one per attribute of the database
    """One attribute of an element as the database-wide attribute search sees it, known without building
    the attribute: its place in the element's ``AttributeSet.every`` and what the search filters and sorts
    on."""

    position: int
    name: str
    path: str
    categories: tuple[str, ...]
    type: str
    hidden: bool
    excluded: bool


@dataclass(frozen=True, eq=False)
class AttributeSet:
    """The attributes of one element or event frame."""

    top: tuple[AttributeNode, ...]
    every: tuple[AttributeNode, ...]  # depth-first, children after their parent
    by_guid: dict[uuid.UUID, AttributeNode]

    def find(self, rel_path: str) -> AttributeNode | None:
        """The attribute at ``Name|Child`` (case-insensitive), or None."""
        nodes, found = self.top, None
        for part in rel_path.upper().split("|"):
            found = next((node for node in nodes if node.attribute.name.upper() == part), None)
            if found is None:
                return None
            nodes = found.children
        return found


def depth_first(elements: Iterable[Element]) -> Iterator[Element]:
    """Elements depth-first, each followed by its descendants."""
    stack = list(reversed(list(elements)))
    while stack:
        element = stack.pop()
        yield element
        stack.extend(reversed(element.children))


def walk_nodes(nodes: Iterable[AttributeNode]) -> Iterator[AttributeNode]:
    """Attributes depth-first, each followed by its children."""
    for node in nodes:
        yield node
        yield from walk_nodes(node.children)


def walk_templates(templates: Iterable[AttributeTemplate]) -> Iterator[AttributeTemplate]:
    """Attribute templates depth-first, each followed by its children."""
    for template in templates:
        yield template
        yield from walk_templates(template.children)
