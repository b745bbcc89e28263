"""The push-producer face every stream transport shows a consumer it writes into.

A transport registered as a producer (``other.register_producer(transport, True)``, to proxy one
connection into another) produces what it reads: pausing it pauses reading, and stopping it
ends the connection. TCP, Unix, stdio, subprocess and TLS transports all mean exactly that, so
they share these three methods.
"""

from __future__ import annotations

__all__ = ["ProducesWhatItReads"]


class ProducesWhatItReads:
    """``pause_producing``/``resume_producing``/``stop_producing`` in terms of the transport's own
    ``pause_reading``/``resume_reading``/``abort_connection``."""

    __slots__ = ()  # a mixin: adds no per-connection memory

    def pause_reading(self) -> None:
        raise NotImplementedError

    def resume_reading(self) -> None:
        raise NotImplementedError

    def abort_connection(self) -> None:
        raise NotImplementedError

    def pause_producing(self) -> None:
        self.pause_reading()

    def resume_producing(self) -> None:
        self.resume_reading()

    def stop_producing(self) -> None:
        self.abort_connection()
