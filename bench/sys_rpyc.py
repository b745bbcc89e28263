"""RPyC with its ThreadedServer (a thread per connection) and a plain rpyc.Service.

RPyC passes only immutable builtins by value; a list of dicts crosses as a
netref, so echoing one would hand the caller its own object back without
moving any data.  D therefore uses RPyC's documented by-value idiom,
`rpyc.classic.obtain` (pickle through the connection, allow_pickle=True), on
the server for the argument and on the client for the result.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from bench.common import BLOB, SMALL_DICTS, Cfg, EResult, Sample, ready, threaded_e_client, timed_loop

NAME = "rpyc"
LABEL = "RPyC"
SCENARIOS = "ABCDE"
IDIOMS = {
    "B": "rpyc.async_ with 100 AsyncResults outstanding on one connection",
    "E": "thread per connection (ThreadedServer on the server side)",
}
NOTES = [
    "RPyC: D echoes by value with rpyc.classic.obtain on both sides (allow_pickle=True); "
    "a plain echo would return a netref to the caller's own list and move no data. "
    "Remote method lookups (conn.root.add) are cached once per connection.",
]
_CONFIG = {"allow_pickle": True}

__all__ = ["NAME", "LABEL", "SCENARIOS", "IDIOMS", "NOTES", "unavailable", "version", "serve", "client", "e_client"]


def unavailable() -> str | None:
    try:
        import rpyc  # noqa: F401
    except ImportError as e:
        return f"not installed ({e})"
    return None


def version() -> str:
    import rpyc

    return ".".join(map(str, rpyc.__version__)) if isinstance(rpyc.__version__, tuple) else str(rpyc.__version__)


def serve() -> None:
    import rpyc
    from rpyc.utils.classic import obtain
    from rpyc.utils.server import ThreadedServer

    class CalcService(rpyc.Service):  # type: ignore[misc]
        def exposed_add(self, a: int, b: int) -> int:
            return a + b

        def exposed_echo(self, x: Any) -> Any:
            return x

        def exposed_echo_copy(self, x: Any) -> Any:
            return obtain(x)

    server = ThreadedServer(
        CalcService, hostname="127.0.0.1", port=0, protocol_config=dict(_CONFIG), auto_register=False
    )
    server._listen()  # listen before announcing the port, start() then skips it
    ready(server.port)
    server.start()


def _connect(port: int) -> Any:
    import rpyc

    return rpyc.connect("127.0.0.1", port, config=dict(_CONFIG))


def client(scenario: str, port: int, cfg: Cfg) -> Sample:
    import rpyc
    from rpyc.utils.classic import obtain

    conn = _connect(port)
    root = conn.root
    add, echo, echo_copy = root.add, root.echo, root.echo_copy
    if scenario == "B":
        aadd = rpyc.async_(add)

        def window(seconds: float) -> Sample:
            q = collections.deque(aadd(1, 2) for _ in range(cfg.pipeline))
            n = 0
            t0 = time.perf_counter()
            end = t0 + seconds
            while q:
                q.popleft().value
                n += 1
                if time.perf_counter() < end:
                    q.append(aadd(1, 2))
            return Sample(n, time.perf_counter() - t0)

        window(cfg.warmup)
        s = window(cfg.duration)
    else:
        fn = {
            "A": lambda: add(1, 2),
            "C": lambda: echo(BLOB),
            "D": lambda: obtain(echo_copy(SMALL_DICTS)),
        }[scenario]
        timed_loop(fn, cfg.warmup)
        s = timed_loop(fn, cfg.duration, record=scenario == "A")
    conn.close()
    return s


def e_client(port: int, nconn: int, cfg: Cfg) -> EResult:
    return threaded_e_client(lambda: _connect(port), lambda c: c.root.add, nconn, cfg)
