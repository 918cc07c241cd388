"""Search semantics of the mock's AF routes: PI name filters, and the filtering and sorting of
``/elements`` (child elements) and ``/attributes`` (child attributes) as PI Web API documents them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import overload

from osipi_dagster.mock.af_objects import (
    AttributeNode,
    AttributeSet,
    AttributeSlot,
    Database,
    Element,
    depth_first,
)
from osipi_dagster.mock.params import Params


def wildcard(pattern: str | None) -> Callable[[str], bool] | None:
    """A case-insensitive matcher for a PI/AF name filter (``*`` any run, ``?`` one character); None = all."""
    if not pattern:
        return None
    text = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    regex = re.compile(text, re.IGNORECASE | re.DOTALL)
    return lambda value: regex.fullmatch(value) is not None


def search_elements(root: Database | Element, params: Params) -> list[Element]:
    """The children (or, with ``searchFullHierarchy``, descendants) of ``root`` that pass the filters of
    ``/elements`` (nameFilter, descriptionFilter, categoryName, templateName incl. derived templates),
    sorted by ``sortField`` (Name | Description) and ``sortOrder``."""
    full = params.bool("searchFullHierarchy", False)
    sort_field = params.choice("sortField", "Name", ["Name", "Description"])
    descending = params.choice("sortOrder", "Ascending", ["Ascending", "Descending"]) == "Descending"
    name = wildcard(params.get("nameFilter"))
    description = wildcard(params.get("descriptionFilter"))
    category = (params.get("categoryName") or "").upper()
    template = params.get("templateName")
    if isinstance(root, Database):
        candidates: Iterable[Element] = root.elements if full else root.roots
    else:
        candidates = depth_first(root.children) if full else root.children
    found = [
        e
        for e in candidates
        if (name is None or name(e.name))
        and (description is None or description(e.description))
        and (not category or any(c.upper() == category for c in e.categories))
        and (not template or e.template.derives_from(template))
    ]
    key = (lambda e: (e.name.lower(), e.path.lower())) if sort_field == "Name" else _description_key
    return sorted(found, key=key, reverse=descending)


def _description_key(element: Element) -> tuple[str, str]:
    return element.description.lower(), element.path.lower()


def search_element_attributes(
    database: Database, params: Params, slots_of: Callable[[Element], Iterable[AttributeSlot]]
) -> list[tuple[Element, int]]:
    """The attributes ``/assetdatabases/{webId}/elementattributes`` finds: those of the root elements (or,
    with ``searchFullHierarchy``, of every element) passing the element filters (elementNameFilter,
    elementDescriptionFilter, elementCategory, elementTemplate incl. derived templates) and the attribute
    filters (attributeNameFilter, attributeCategory, attributeType), child attributes included, sorted by
    name (``sortField`` Name only) and ``sortOrder``. Excluded and hidden attributes are left out, as the
    per-element listing does by default (the search has no showExcluded or showHidden).

    Returns each attribute as its element and its position in the element's ``AttributeSet.every``: the
    search reads only the attributes' slots, so it does not build the attributes (a database of 100,000
    points has about 420,000) to sort them.
    """
    full = params.bool("searchFullHierarchy", False)
    descending = params.choice("sortOrder", "Ascending", ["Ascending", "Descending"]) == "Descending"
    params.choice("sortField", "Name", ["Name"])
    element_name = wildcard(params.get("elementNameFilter"))
    element_description = wildcard(params.get("elementDescriptionFilter"))
    element_category = (params.get("elementCategory") or "").upper()
    element_template = params.get("elementTemplate")
    name = wildcard(params.get("attributeNameFilter"))
    category = (params.get("attributeCategory") or "").upper()
    value_type = (params.get("attributeType") or "").upper()
    keys: list[str] = []
    found: list[tuple[Element, int]] = []
    for element in database.elements if full else database.roots:
        if not (
            (element_name is None or element_name(element.name))
            and (element_description is None or element_description(element.description))
            and (not element_category or any(c.upper() == element_category for c in element.categories))
            and (not element_template or element.template.derives_from(element_template))
        ):
            continue
        for slot in slots_of(element):
            if (
                not slot.excluded
                and not slot.hidden
                and (name is None or name(slot.name))
                and (not category or any(c.upper() == category for c in slot.categories))
                and (not value_type or slot.type.upper() == value_type)
            ):
                # The order of (name, path) pairs in one string comparison: no name holds a NUL, which
                # sorts before every other character.
                keys.append(f"{slot.name.lower()}\0{slot.path.lower()}")
                found.append((element, slot.position))
    order = sorted(range(len(keys)), key=keys.__getitem__, reverse=descending)
    return [found[index] for index in order]


class FoundAttributes(Sequence[AttributeNode]):
    """The attributes a database-wide search found, in order: an item or a slice (a page) builds only the
    attribute sets of its own elements."""

    def __init__(
        self, found: list[tuple[Element, int]], attributes_of: Callable[[Element], AttributeSet]
    ) -> None:
        self._found = found
        self._attributes_of = attributes_of

    def __len__(self) -> int:
        return len(self._found)

    @overload
    def __getitem__(self, index: int) -> AttributeNode: ...

    @overload
    def __getitem__(self, index: slice) -> list[AttributeNode]: ...

    def __getitem__(self, index: int | slice) -> AttributeNode | list[AttributeNode]:
        if isinstance(index, slice):
            return [self._attributes_of(element).every[at] for element, at in self._found[index]]
        element, at = self._found[index]
        return self._attributes_of(element).every[at]


def filter_attributes(nodes: Iterable[AttributeNode], params: Params) -> list[AttributeNode]:
    """Apply nameFilter, categoryName, templateName, showExcluded and showHidden; sort by name."""
    name = wildcard(params.get("nameFilter"))
    category = (params.get("categoryName") or "").upper()
    template = params.get("templateName")
    show_excluded = params.bool("showExcluded", False)
    show_hidden = params.bool("showHidden", False)
    descending = params.choice("sortOrder", "Ascending", ["Ascending", "Descending"]) == "Descending"
    params.choice("sortField", "Name", ["Name"])
    found = [
        node
        for node in nodes
        if (name is None or name(node.attribute.name))
        and (not category or any(c.upper() == category for c in node.attribute.categories))
        and (
            not template
            or (
                node.template is not None
                and node.template.template is not None
                and node.template.template.derives_from(template)
            )
        )
        and (show_excluded or not node.excluded)
        and (show_hidden or not node.hidden)
    ]
    return sorted(
        found, key=lambda n: (n.attribute.name.lower(), n.attribute.path.lower()), reverse=descending
    )
