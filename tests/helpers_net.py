"""What the transport test modules share, written once: an endpoint-string escape, a connect that
is meant to fail, a ClientFactory that reports its hooks, and a producer that records its calls.

Only what two or more of test_tcp, test_unix, test_tls, test_flow_control, test_writebuffer,
test_process and test_stdio use lives here; what is one transport's own stays in its module.
"""

from __future__ import annotations

from typing import Any

from net.defer import Deferred, Failure
from net.endpoints import client
from net.protocol import ClientFactory
from net.testing import CollectingFactory, Recorder

__all__ = ["esc", "connect_failure", "RecordingClientFactory", "SpyProducer"]


def esc(path: Any) -> str:
    """A path as an endpoint-string value (colons and backslashes escaped)."""
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


async def connect_failure(reactor: Any, spec: str, factory: Any = None) -> BaseException:
    """Connect with ``spec`` and return the exception the attempt failed with; a connection that
    succeeds fails the test."""
    try:
        protocol = await client(reactor, spec).connect(factory or CollectingFactory())
    except Exception as exc:
        return exc
    raise AssertionError(f"connected, unexpectedly: {protocol!r}")


class RecordingClientFactory(ClientFactory):
    """A ClientFactory whose hooks fill Deferreds: ``made`` (the first protocol's connection_made),
    ``failed`` and ``lost`` (the reason's exception); ``started`` counts start_connecting and
    ``built`` keeps every protocol built."""

    protocol = Recorder

    def __init__(self) -> None:
        self.started = 0
        self.failed: Deferred[Any] = Deferred()
        self.lost: Deferred[Any] = Deferred()
        self.built: list[Any] = []
        self.made: Deferred[Any] = Deferred()

    def start_connecting(self, connector: Any) -> None:
        self.started += 1

    def build_protocol(self, addr: Any) -> Any:
        p = Recorder()
        p.factory = self
        self.built.append(p)
        p.when_made().chain_deferred(self.made)
        return p

    def client_connection_failed(self, connector: Any, reason: Failure) -> None:
        self.failed.callback(reason.value)

    def client_connection_lost(self, connector: Any, reason: Failure) -> None:
        self.lost.callback(reason.value)


class SpyProducer:
    """A producer that records what its consumer asks of it: ``calls`` in order ("pause",
    "resume", "stop"), and whether it is ``paused`` now. A test that produces overrides
    ``resume_producing`` (calling this one first) to write again."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.paused = False

    @property
    def pauses(self) -> int:
        return self.calls.count("pause")

    @property
    def resumes(self) -> int:
        return self.calls.count("resume")

    def pause_producing(self) -> None:
        self.calls.append("pause")
        self.paused = True

    def resume_producing(self) -> None:
        self.calls.append("resume")
        self.paused = False

    def stop_producing(self) -> None:
        self.calls.append("stop")
