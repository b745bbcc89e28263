"""Test helpers: in-memory transports, a fake clock, recording protocols, a transport conformance kit.

Four modules, each importable on its own; every name is also importable from here
(``from net.testing import Clock, connect_protocols, TRANSPORT_CHECKS``):

* :mod:`net.testing.memory` -- **in memory.** :func:`connect_protocols` joins two protocols with
  :class:`MemoryTransport`\\ s and returns a :class:`Pump` that moves bytes between them when
  asked, so framing and broker protocols are tested sans I/O: no reactor, no sockets, every step
  deterministic. :class:`MemoryPort` does the same on a reactor (a :class:`LoopPump` moves the
  bytes from its loop).
* :mod:`net.testing.clock` -- **a fake clock.** :class:`Clock` is the time-and-queue part of a
  reactor; nothing runs until the test calls :meth:`Clock.run_until_idle` or
  :meth:`Clock.advance`, so timeouts are tested without waiting::

      clock = Clock()
      d = Deferred().add_timeout(5, clock)
      clock.advance(4.9)   # not yet
      clock.advance(0.1)   # d fails with TimeoutError now

* :mod:`net.testing.recording` -- :class:`Recorder` (records every callback; ``when_*`` methods
  return Deferreds to wait on), :class:`Echo`, :class:`CollectingFactory`, :func:`iterations`.
* :mod:`net.testing.conformance` -- **the conformance kit.** Every stream transport on every
  reactor backend must behave the same. :data:`TRANSPORT_CHECKS` are coroutine functions
  ``check(reactor, pair)`` that exercise one property each over a :class:`StreamPair` (how to
  listen and how to connect with that transport); :data:`STREAM_PAIRS` names the transports
  (TCP, TLS, memory). A test module parametrises over them::

      @pytest.mark.parametrize("check", TRANSPORT_CHECKS, ids=lambda c: c.__name__)
      def test_conformance(reactor, run, check):
          run(reactor, check(reactor, tcp_pair(reactor)))
"""

from __future__ import annotations

# Each module's __all__ is the package's: one list of names, kept where the names are defined.
from . import clock, conformance, memory, recording
from .clock import *  # noqa: F403
from .conformance import *  # noqa: F403
from .memory import *  # noqa: F403
from .recording import *  # noqa: F403

__all__ = [*memory.__all__, *clock.__all__, *recording.__all__, *conformance.__all__]
