"""Redis replies as Python strings.

redis-py types a reply `bytes | str` however the client was made (bytes by default, str with
`decode_responses=True`; both kinds are used here), and a range as members or (member, score)
pairs whatever `withscores` said. These narrow a reply where it is read, checked, rather than
a cast at every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def text(raw: object) -> str:
    """One string reply (a key, a member, a hash value) as str."""
    if isinstance(raw, bytes):
        return raw.decode()
    if isinstance(raw, str):
        return raw
    raise TypeError(f"expected a string reply from Redis, got {type(raw).__name__}")


def texts(raw: Iterable[object]) -> list[str]:
    """A list reply (a range without scores, SMEMBERS, a LRANGE) as strings."""
    return [text(r) for r in raw]


def text_map(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """A HGETALL reply as str -> str."""
    return {text(k): text(v) for k, v in raw.items()}
