"""A server with a manhole, for tests/test_manhole.py: ``python tests/manhole_server.py ENDPOINT LOGFILE [LIMITS_JSON]``.

Its namespace holds ``app`` (an object with ``value = 21`` and ``later()``, a Deferred that fires
with ``"done"`` once ``app.fire()`` is called) and ``reactor``. Logs (net.manhole at DEBUG) go to
LOGFILE. Prints ``listening`` (``listening PORT`` for a tls: endpoint) once it listens, or
``failed: MESSAGE`` and exits 3; SIGTERM stops it (the service is stopped first).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from net.defer import Deferred, Failure  # noqa: E402
from net.manhole import ManholeService  # noqa: E402
from net.reactor import make_reactor  # noqa: E402


class App:
    value = 21

    def __init__(self) -> None:
        self.pending: list[Deferred[str]] = []

    def later(self) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        self.pending.append(d)
        return d

    def fire(self) -> int:
        fired, self.pending = self.pending, []
        for d in fired:
            d.callback("done")
        return len(fired)


def main() -> None:
    endpoint, logfile = sys.argv[1], sys.argv[2]
    limits = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    handler = logging.FileHandler(logfile)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("net.manhole").setLevel(logging.DEBUG)
    reactor = make_reactor()
    try:
        service = ManholeService(reactor, endpoint, {"app": App(), "reactor": reactor}, **limits)
    except ValueError as exc:
        print(f"failed: {exc}", flush=True)
        sys.exit(3)

    def started(_: Any) -> None:
        port = getattr(service.port.get_host(), "port", None) if service.port is not None else None
        print("listening" if port is None else f"listening {port}", flush=True)

    def failed(failure: Failure) -> None:
        print(f"failed: {failure.get_error_message()}", flush=True)
        reactor.stop()

    reactor.call_when_running(lambda: service.start_service().add_callbacks(started, failed))
    reactor.add_system_event_trigger("before", "shutdown", service.stop_service)
    reactor.run()


if __name__ == "__main__":
    main()
