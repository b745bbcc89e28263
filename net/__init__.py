"""net: an event-driven networking framework.

A reactor (one thread, one loop, runtime-chosen backend), Deferreds, transports kept apart from
protocols, flow control and framing helpers. Start with :func:`net.react`
(run one program on a fresh reactor) or :func:`net.reactor.make_reactor`.
"""

from ._version import __version__
from .react import react

__all__ = ["__version__", "react"]
