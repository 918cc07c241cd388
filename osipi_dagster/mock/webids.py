"""WebID 2.0 identifiers, encoded the way PI Web API encodes them.

Layout: ``<type char><version '1'><2-char marker>[owner marker]<payload>``. GUIDs are base64url of the
Microsoft byte order (22 chars), Int32 are 4 little-endian bytes (6 chars), the name payload is the
base64url of the upper-cased path without its leading ``\\\\``. Padding is always stripped.

The client never imports this module: the mock is the client's test oracle.
"""

from __future__ import annotations

import base64
import struct
import uuid
from dataclasses import dataclass
from functools import lru_cache

from osipi_dagster.mock.errors import PIError

# Marker -> (owner marker length, number of GUIDs, has an Int32 id). Owner markers: attributes
# and enumeration sets carry one character naming what owns them.
_LAYOUTS: dict[str, tuple[int, int, bool]] = {
    "DS": (0, 1, False),  # PI Data Archive: server guid
    "DP": (0, 1, True),  # PI Point: server guid + point id
    "RS": (0, 1, False),  # AF server: system guid
    "RD": (0, 2, False),  # AF database: system guid + database guid
    "Em": (0, 2, False),  # element: system guid + element guid
    "Fm": (0, 2, False),  # event frame: system guid + event frame guid
    "ET": (0, 2, False),  # element template: system guid + template guid
    "AT": (0, 3, False),  # attribute template: system guid + element template guid + its own guid
    "EC": (0, 2, False),  # element category: system guid + category guid
    "Ab": (1, 3, False),  # attribute: system guid + owner guid + attribute guid
    "MS": (1, 2, False),  # enumeration set: system/server guid + set guid
    "MV": (1, 3, False),  # enumeration value: system/server guid + set guid + value guid
    "NR": (0, 2, False),  # notification rule: system guid + rule guid
    "NS": (1, 3, False),  # notification rule subscriber (owner "L"): system guid + rule guid + its own guid
}
WEBID_TYPES = {"Full": "F", "IDOnly": "I", "PathOnly": "P", "LocalIDOnly": "L", "DefaultIDOnly": "D"}


@dataclass(frozen=True)
class WebId:
    """A decoded WebID. ``guids``/``point_id`` are empty for PathOnly ids, ``path`` for IDOnly ids."""

    kind: str  # the type char: F, I, P, L, D
    marker: str
    owner: str
    guids: tuple[uuid.UUID, ...]
    point_id: int | None
    path: str | None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# The parts of a WebID repeat across answers: a database-wide attribute search gives every attribute with
# its element's, template's and point's WebIDs, and a second catalog refresh asks for all of them again.
# Bounded, since event frames (and their GUIDs) are made on demand for as long as the server runs.
_PARTS_KEPT = 1 << 18


@lru_cache(maxsize=_PARTS_KEPT)
def _name_payload(path: str) -> str:
    return _b64(path.lstrip("\\").upper().encode("utf-8"))


_guid_payloads: dict[int, str] = {}  # by the GUID's int: hashing a UUID object is a Python call


def _guid_payload(guid: uuid.UUID) -> str:
    number = guid.int
    payload = _guid_payloads.get(number)
    if payload is None:
        if len(_guid_payloads) >= _PARTS_KEPT:
            _guid_payloads.clear()
        payload = _guid_payloads[number] = _b64(guid.bytes_le)
    return payload


@lru_cache(maxsize=_PARTS_KEPT)
def _int_payload(number: int) -> str:
    return _b64(struct.pack("<i", number))


def encode(
    marker: str,
    guids: tuple[uuid.UUID, ...],
    path: str,
    *,
    point_id: int | None = None,
    owner: str = "",
    webid_type: str = "Full",
) -> str:
    """Encode a WebID of ``webid_type`` (Full, IDOnly, PathOnly, LocalIDOnly, DefaultIDOnly)."""
    kind = WEBID_TYPES[webid_type]
    head = f"{kind}1{marker}{owner}"
    if kind == "P":
        return head + _name_payload(path)
    # The server is implied in L and D: only the object's own id is carried.
    ids = "".join(map(_guid_payload, guids if kind not in ("L", "D") else guids[-1:]))
    if point_id is not None:
        ids += _int_payload(point_id)
    return head + ids + (_name_payload(path) if kind == "F" else "")


def decode(text: str) -> WebId:
    """Decode a WebID, or raise a 400 ``PIError`` "Unknown or invalid WebID format"."""
    try:
        return _decode(text)
    except (ValueError, KeyError, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise PIError(400, f"Unknown or invalid WebID format: '{text}'.") from exc


def _decode(text: str) -> WebId:
    kind, version, marker = text[0], text[1], text[2:4]
    if kind not in WEBID_TYPES.values() or version != "1":
        raise ValueError(text)
    owner_len, n_guids, has_int = _LAYOUTS[marker]
    rest = text[4:]
    owner, rest = rest[:owner_len], rest[owner_len:]
    if owner_len and not owner.isalpha():
        raise ValueError(text)
    if kind == "P":
        return WebId(kind, marker, owner, (), None, _unb64(rest).decode("utf-8"))
    if kind in ("L", "D"):
        n_guids = 1
    guids = []
    for _ in range(n_guids):
        chunk, rest = rest[:22], rest[22:]
        if len(chunk) != 22:
            raise ValueError(text)
        guids.append(uuid.UUID(bytes_le=_unb64(chunk)))
    point_id = None
    if has_int:
        chunk, rest = rest[:6], rest[6:]
        if len(chunk) != 6:
            raise ValueError(text)
        point_id = struct.unpack("<i", _unb64(chunk))[0]
    if kind == "F":
        if not rest:
            raise ValueError(text)
        path = _unb64(rest).decode("utf-8")
    elif rest:
        raise ValueError(text)
    else:
        path = None
    return WebId(kind, marker, owner, tuple(guids), point_id, path)
