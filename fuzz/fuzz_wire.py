"""broker.wire's decoder fed arbitrary bytes, whole or split at arbitrary points.

Input: one control byte, then the stream. Control bits: 0x80 expect a hello first; 0x40 small
limits (so the limit checks are reachable with short inputs); 0x20 drain with ``messages()``
instead of ``next_message()``; 0x10 feed through ``get_buffer``/``buffer_updated`` (the
transports' zero-copy path) instead of ``receive_data``; 0x0f seeds the split points (0: one
chunk).

Checked: only ``wire.RemoteProtocolError`` (the documented "the peer broke the protocol" family)
escapes the decoder; after a fatal error (FrameTooLarge, TruncatedFrame) the same error is raised
again; every decoded message re-encodes, and that encoding decodes to a message that encodes to
the same bytes (encode ∘ decode is a fixed point after one step); the messages and errors, in
order, are the same as for the whole stream fed at once.
"""

from __future__ import annotations

from typing import Any

from fuzz import _util

with _util.instrument(__name__):
    from broker import wire
    from broker.messages import Hello

_FATAL = (wire.FrameTooLarge, wire.TruncatedFrame)
_SMALL: dict[str, Any] = {"max_frame_size": 512, "max_depth": 4, "max_container_length": 8}


Event = tuple[str, Any]


def _roundtrip(message: object) -> bytes:
    """The message's frame, after checking encode ∘ decode is stable from there on."""
    frame = wire.encode(message)  # type: ignore[arg-type]
    again = wire.decode(frame, expect_hello=isinstance(message, Hello), max_frame_size=(1 << 32) - 1)
    assert wire.encode(again) == frame, (message, again)
    return frame


def _drain(decoder: wire.WireDecoder, use_messages: bool, events: list[Event]) -> bool:
    """Take every complete message into ``events``; False once the stream is dead."""
    while True:
        try:
            if use_messages:
                batch = decoder.messages()
                events.extend(("message", _roundtrip(m)) for m in batch)
                if batch:
                    continue
            message = decoder.next_message()  # after an empty batch: NEED_DATA or CLOSED
        except _FATAL as exc:
            events.append(("fatal", f"{type(exc).__name__}: {exc}"))
            try:
                decoder.next_message()
            except type(exc):
                return False
            raise AssertionError(f"{type(exc).__name__} was not raised again")
        except wire.RemoteProtocolError as exc:
            events.append(("error", f"{type(exc).__name__}: {exc}"))
            continue  # the decoder has moved past the bad frame
        if message is wire.NEED_DATA:
            return True
        if message is wire.CLOSED:
            events.append(("closed", None))
            return False
        events.append(("message", _roundtrip(message)))


def _decode(payload_chunks: list[bytes], options: dict[str, Any], use_messages: bool, buffered: bool) -> list[Event]:
    decoder = wire.WireDecoder(**options)
    events: list[Event] = []
    for chunk in payload_chunks:
        if buffered:  # the transport's zero-copy path: receive straight into the decoder's buffer
            view = decoder.get_buffer(len(chunk))
            assert len(view) >= len(chunk)
            view[: len(chunk)] = chunk
            view.release()
            decoder.buffer_updated(len(chunk))
        else:
            decoder.receive_data(chunk)
        if not _drain(decoder, use_messages, events):
            return events
    decoder.receive_data(b"")
    _drain(decoder, use_messages, events)
    return events


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    control, payload = data[0], data[1:]
    options: dict[str, Any] = dict(_SMALL) if control & 0x40 else {}
    options["expect_hello"] = bool(control & 0x80)
    pieces = list(_util.chunks(payload, control & 0x0F))
    events = _decode(pieces, options, bool(control & 0x20), bool(control & 0x10))
    whole = _decode([payload] if payload else [], options, False, False)
    assert events == whole, "the result depends on how the stream was split or fed"


if __name__ == "__main__":
    _util.main(TestOneInput)
