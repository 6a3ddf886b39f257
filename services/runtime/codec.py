"""The msgpack codec for HEAN events: encode, and decode with validation.

Built on msgspec, which speaks msgpack and validates while it decodes (measured against
msgpack-python + validation in `make bench`; the figures and the choice are in
docs/DESIGN-NOTES.md). Decoding never crashes a service: garbage, truncated bytes, a null value, an
unknown type or a wrong field type raise `DecodeError`, an unknown major version `UnsupportedVersion`.
Unknown fields are ignored, so a newer producer with extra fields stays readable.

Money is written as exact decimal strings. A foreign producer's msgpack int or float in a Decimal
field is read through its shortest repr (0.1 → Decimal("0.1")), never its binary expansion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from operator import attrgetter
from typing import Any

import msgspec

from schemas.events import SCHEMA_MAJOR, AnyEvent, Event, event_tag
from services.runtime.errors import DecodeError, NotAccepted, UnsupportedVersion

__all__ = ["decode", "decode_as", "encode", "encode_sorted", "non_finite", "typed_batch_decoder", "typed_decoder"]

_encoder = msgspec.msgpack.Encoder()
_sorted_encoder = msgspec.msgpack.Encoder(order="sorted")
_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(AnyEvent)
_typed_decoders: dict[Any, Callable[[bytes], Any]] = {}
_batch_decoders: dict[Any, Callable[[Sequence[bytes]], list[Any] | None]] = {}
_raw_list_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])
_version = attrgetter("version")


def encode(event: Event) -> bytes:
    """The wire bytes of one event."""
    return _encoder.encode(event)


def encode_sorted(value: object) -> bytes:
    """Canonical bytes (map keys sorted) of any msgspec-encodable value, for state hashes."""
    return _sorted_encoder.encode(value)


def decode(data: bytes) -> Event:
    """Decode and validate one event of any known type.

    Raises DecodeError ("malformed" for bytes that are not msgpack, "invalid" for msgpack that is
    not a valid event) or UnsupportedVersion.
    """
    try:
        event = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise DecodeError("invalid", f"Not a valid HEAN event: {exc}") from None
    except msgspec.DecodeError as exc:
        raise DecodeError("malformed", f"Not decodable msgpack: {exc}") from None
    except TypeError:
        raise _not_bytes(data) from None
    if event.version != SCHEMA_MAJOR:
        raise UnsupportedVersion(event_tag(type(event)), event.version, SCHEMA_MAJOR)
    return event


def non_finite(value: Any, path: str = "") -> str | None:
    """The path of the first NaN or infinite number in an event (its structs, lists, tuples and
    dicts), or None. Decimal("NaN") and Decimal("Infinity") decode (as text, or from a foreign
    producer's msgpack float) but no amount is ever either; a store refuses them (a ClickHouse
    Decimal column), so a reader that stores what it reads checks with this. A walk of the whole
    event (microseconds): for the slow paths, not a hot loop."""
    if isinstance(value, Decimal):
        return None if value.is_finite() else path
    if isinstance(value, float):
        return None if value == value and value not in (float("inf"), float("-inf")) else path
    if isinstance(value, msgspec.Struct):
        items: Any = ((name, getattr(value, name)) for name in value.__struct_fields__)
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    elif isinstance(value, dict):
        items = value.items()
    else:
        return None
    for key, item in items:
        found = non_finite(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _not_bytes(data: object) -> DecodeError:
    """A record whose value is not bytes at all: a null value (a tombstone) is a valid Kafka record."""
    found = "a null value" if data is None else type(data).__name__
    return DecodeError("malformed", f"Expected msgpack bytes, found {found}; check the producer of this topic.")


def decode_as(data: bytes, event_type: Any) -> Any:
    """Decode into one type (or union of types) only: a stricter boundary for a known topic.

    A valid event of another known type raises NotAccepted (skip it); anything else DecodeError.
    """
    return typed_decoder(event_type)(data)


def typed_decoder(event_type: Any) -> Callable[[bytes], Any]:
    """`decode_as` with the type bound once: what a loop over a million records calls."""
    decoder = _typed_decoders.get(event_type)
    if decoder is None:
        decoder = _typed_decoders[event_type] = _make_typed_decoder(event_type)
    return decoder


def _make_typed_decoder(event_type: Any) -> Callable[[bytes], Any]:
    raw_decode = msgspec.msgpack.Decoder(event_type).decode

    def decode_typed(data: bytes) -> Any:
        try:
            event = raw_decode(data)
        except msgspec.ValidationError as exc:
            try:  # the slow path, only on failure: is it a valid event of another type?
                other = decode(data)
            except UnsupportedVersion:
                raise
            except DecodeError:
                raise DecodeError("invalid", f"Not a valid {event_type}: {exc}") from None
            raise NotAccepted(event_tag(type(other))) from None
        except msgspec.DecodeError as exc:
            raise DecodeError("malformed", f"Not decodable msgpack: {exc}") from None
        except TypeError:  # only on failure, so the hot path pays nothing for it
            raise _not_bytes(data) from None
        if event.version != SCHEMA_MAJOR:
            raise UnsupportedVersion(event_tag(type(event)), event.version, SCHEMA_MAJOR)
        return event

    return decode_typed


def typed_batch_decoder(event_type: Any) -> Callable[[Sequence[bytes]], list[Any] | None]:
    """Decode many records of one type (or union) in one call; None when any of them is not a
    valid event of that type and major version, so the caller decodes those records one by one
    (`typed_decoder`) to dead-letter or skip exactly the bad ones.

    The records are joined under one msgpack array header and decoded as a list, which spares
    a decoder call and its setup per record (the recorder's hot path). A first pass reads the
    list as raw elements and requires each to span exactly its own record, so garbage that would
    shift the boundaries (half an event in one record, the rest in the next) is never taken.
    """
    decoder = _batch_decoders.get(event_type)
    if decoder is None:
        decoder = _batch_decoders[event_type] = _make_batch_decoder(event_type)
    return decoder


def _make_batch_decoder(event_type: Any) -> Callable[[Sequence[bytes]], list[Any] | None]:
    list_decode = msgspec.msgpack.Decoder(list[event_type]).decode  # type: ignore[valid-type]
    raw_decode = _raw_list_decoder.decode

    def decode_batch(values: Sequence[bytes]) -> list[Any] | None:
        if not values:
            return []
        try:
            blob = b"\xdd" + len(values).to_bytes(4, "big") + b"".join(values)  # array 32 header
            if list(map(len, raw_decode(blob))) != list(map(len, values)):
                return None
            events = list_decode(blob)
        except (msgspec.DecodeError, TypeError, OverflowError):  # ValidationError is a DecodeError
            return None
        if set(map(_version, events)) != {SCHEMA_MAJOR}:  # in C: a generator cost ~0.2 µs a record
            return None
        return events

    return decode_batch
