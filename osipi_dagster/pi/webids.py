"""Which object a WebID names, and pairing a multi-stream answer with its request by identity.

PI answers a streamset request with its own canonical WebID of each stream, which need not be the string the
caller sent: another WebID type (``I1DP…`` IDOnly for a ``F1DP…`` Full request, ``webIdType`` or the
server's ``WebIDType`` setting decide), or the current path in the name payload of a renamed point. What
stays is the identity a WebID 2.0 encodes (piwebapi.md §7.5): ``<type char><version '1'><marker>[owner]``
then the GUIDs (base64url of the Microsoft byte order, 22 characters each) and, for PI points, the point id
(4 little-endian bytes, 6 characters); Full IDs end with the name payload, which is ignored here.

The identity of a WebID is its marker, owner marker, GUIDs and point id. LocalIDOnly and DefaultIDOnly IDs
carry only the object's own GUID (the server is implied), so they share an identity with Full and IDOnly IDs
only where that GUID is the whole identity (data servers, points, AF servers). PathOnly IDs carry no id at
all, and IDs this module cannot decode (version 1.0 IDs, unverified markers, anything malformed) have no
identity: both are matched by their exact string only. The mock server has its own encoder
(``osipi_dagster/mock/webids.py``); this decoder is written independently on purpose, the mock being the
oracle.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

# Marker -> (owner marker length, GUIDs in Full and IDOnly IDs, has an Int32 point id): the layouts
# verified on real IDs (piwebapi.md §7.5). Other markers are not decoded, so never matched but by string.
_LAYOUTS: dict[str, tuple[int, int, bool]] = {
    "DS": (0, 1, False),  # PI Data Archive: server
    "DP": (0, 1, True),  # PI Point: server + point id
    "RS": (0, 1, False),  # AF server: system
    "RD": (0, 2, False),  # AF database: system + database
    "Em": (0, 2, False),  # element: system + element
    "Fm": (0, 2, False),  # event frame: system + event frame
    "Ab": (1, 3, False),  # attribute: system + owner + attribute
    "MS": (1, 2, False),  # enumeration set: system or server + set
}
_GUID_CHARS = 22
_INT32_CHARS = 6
_ID_TYPES = frozenset("FIDL")  # Full, IDOnly, DefaultIDOnly, LocalIDOnly; PathOnly ("P") carries no id


@dataclass(frozen=True, slots=True)
class Identity:
    """The object a WebID names: its marker (with the owner marker) and the ids it carries."""

    marker: str
    ids: tuple[bytes, ...]
    point_id: bytes | None


def identity(web_id: str) -> Identity | None:
    """The identity encoded in ``web_id``, or None when it carries none this module can read."""
    if len(web_id) < 4 or web_id[0] not in _ID_TYPES or web_id[1] != "1":
        return None
    layout = _LAYOUTS.get(web_id[2:4])
    if layout is None:
        return None
    owner_length, guid_count, has_point_id = layout
    owner = web_id[4 : 4 + owner_length]
    if owner_length and not owner.isalpha():
        return None
    position = 4 + owner_length
    if web_id[0] in "DL":  # the server is implied: only the object's own GUID is carried
        guid_count = 1
    try:
        ids = []
        for _ in range(guid_count):
            ids.append(_unb64(web_id[position : position + _GUID_CHARS], 16))
            position += _GUID_CHARS
        point_id = None
        if has_point_id:
            point_id = _unb64(web_id[position : position + _INT32_CHARS], 4)
            position += _INT32_CHARS
        name = web_id[position:]
        if (web_id[0] == "F") != bool(name):  # only Full IDs carry a name payload, and always do
            return None
        if name:
            _unb64(name, None)
    except ValueError:
        return None
    return Identity(web_id[2:4] + owner, tuple(ids), point_id)


def _unb64(text: str, size: int | None) -> bytes:
    """base64url without padding; ``size`` bytes exactly when given."""
    if size is not None and len(text) != (size * 4 + 2) // 3:
        raise ValueError(text)
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except binascii.Error as exc:
        raise ValueError(text) from exc
    if size is not None and len(raw) != size:
        raise ValueError(text)
    return raw


@dataclass
class Pairing:
    """Which answered stream belongs to which requested one (indices into both lists)."""

    pairs: list[tuple[int, int]]  # (requested, answered)
    unanswered: dict[int, str]  # requested -> why no answer is its own
    ignored: list[int]  # answered streams that name no requested stream


def pair_streams(requested: Sequence[str], answered: Sequence[str]) -> Pairing:
    """Pair each requested WebID with the answered WebID naming the same object, never by position.

    An answer is its stream's when the strings are equal or the identities are (see :func:`identity`).
    Several requested aliases of one object (all read with the same query) take that object's answers
    one each, exact strings first. A stream with no answer, or with more answers than it was requested,
    is unanswered (the answer is ambiguous: it is never stored twice); answers naming nothing requested
    are ignored.
    """
    if len(answered) == len(requested) and all(map(str.__eq__, answered, requested)):
        return Pairing([(i, i) for i in range(len(requested))], {}, [])
    wanted: dict[Identity | str, list[int]] = {}
    for index, web_id in enumerate(requested):
        wanted.setdefault(identity(web_id) or web_id, []).append(index)
    offered: dict[Identity | str, list[int]] = {}
    for index, web_id in enumerate(answered):
        offered.setdefault(identity(web_id) or web_id, []).append(index)
    pairing = Pairing([], {}, [])
    for key, indices in wanted.items():
        answers = offered.pop(key, [])
        if len(answers) > len(indices):
            for index in indices:
                pairing.unanswered[index] = (
                    f"the stream is answered {len(answers)} times for {len(indices)} request(s), "
                    "which is ambiguous"
                )
            continue
        free, rest = list(answers), []
        for index in indices:
            exact = next((a for a in free if answered[a] == requested[index]), None)
            if exact is None:
                rest.append(index)
            else:
                free.remove(exact)
                pairing.pairs.append((index, exact))
        for index in rest:
            if free:
                pairing.pairs.append((index, free.pop(0)))
            else:
                pairing.unanswered[index] = "the stream is missing"
    pairing.ignored = sorted(i for answers in offered.values() for i in answers)
    return pairing
