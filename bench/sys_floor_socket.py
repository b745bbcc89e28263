"""Floor: blocking sockets speaking the same length-prefixed msgpack as the asyncio floor.

No event loop at all: the client blocks in recv, the server runs a thread per
connection.  It bounds what a blocking client (broker.blocking) could reach.
Pipelining needs a second reader, so B is asyncio-floor only.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from bench.common import BLOB, SMALL_DICTS, Cfg, EResult, Sample, ready, timed_loop

NAME = "floor_socket"
LABEL = "floor: socket"
SCENARIOS = "ACD"
IDIOMS: dict[str, str] = {}
NOTES: list[str] = []

__all__ = ["NAME", "LABEL", "SCENARIOS", "IDIOMS", "NOTES", "unavailable", "version", "serve", "client", "e_client"]

HANDLERS: dict[str, Any] = {"add": lambda a, b: a + b, "echo": lambda x: x}


def unavailable() -> str | None:
    try:
        import msgpack  # noqa: F401
    except ImportError as e:
        return f"not installed ({e})"
    return None


def version() -> str:
    import msgpack

    return "msgpack " + ".".join(map(str, msgpack.version))


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            raise ConnectionError("peer closed")
        got += k
    return buf


def _recv_msg(sock: socket.socket) -> Any:
    import msgpack

    n = int.from_bytes(_recv_exact(sock, 4), "big")
    return msgpack.unpackb(_recv_exact(sock, n))


def _send_msg(sock: socket.socket, msg: Any) -> None:
    import msgpack

    body = msgpack.packb(msg)
    sock.sendall(len(body).to_bytes(4, "big") + body)


def _handle(sock: socket.socket) -> None:
    with sock:
        try:
            while True:
                rid, method, args = _recv_msg(sock)
                _send_msg(sock, [rid, HANDLERS[method](*args)])
        except (ConnectionError, OSError):
            pass


def serve() -> None:
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1024)
    ready(lsock.getsockname()[1])
    while True:
        sock, _addr = lsock.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_handle, args=(sock,), daemon=True).start()


def client(scenario: str, port: int, cfg: Cfg) -> Sample:
    sock = socket.create_connection(("127.0.0.1", port), timeout=cfg.scenario_timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    method, args = {"A": ("add", (1, 2)), "C": ("echo", (BLOB,)), "D": ("echo", (SMALL_DICTS,))}[scenario]
    rid = 0

    def call() -> Any:
        nonlocal rid
        rid += 1
        _send_msg(sock, [rid, method, args])
        return _recv_msg(sock)[1]

    timed_loop(call, cfg.warmup)
    s = timed_loop(call, cfg.duration, record=scenario == "A")
    sock.close()
    return s


def e_client(port: int, nconn: int, cfg: Cfg) -> EResult:
    raise NotImplementedError("the socket floor covers A, C and D only")
