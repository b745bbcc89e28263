"""A misbehaving pbroker server, for the Java client's malformed-frame tests.

    .venv/bin/python clients/java/src/test/resources/garbage_server.py

One listening socket per mode, on 127.0.0.1; prints ``READY <mode>=<port> ...`` and exits when
stdin closes. Every connection: read the client's Hello, then

- ``nohello``:   answer with a frame whose body is not msgpack at all (instead of a Hello);
- ``body``:      send a real Hello (``broker.wire``), wait for the client's first call, then a
                 frame whose body is the never-used msgpack byte 0xc1;
- ``type``:      ... then a well-formed array naming message type 99;
- ``huge``:      ... then a length header of 2 GiB - 1 (more than any client accepts);
- ``truncated``: ... then a header announcing 100 bytes, 10 bytes of it, and end of stream.

Except for ``truncated`` the server then keeps the connection open and only reads, so a client
that did not close on its own would hang: the test proves it does not.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", ".."))
sys.path.insert(0, ROOT)

import msgpack  # noqa: E402

from broker.wire import WireDecoder, encode  # noqa: E402

MODES = ("nohello", "body", "type", "huge", "truncated")


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def read_frame(conn: socket.socket) -> bytes | None:
    def exactly(n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    header = exactly(4)
    if header is None:
        return None
    return exactly(struct.unpack(">I", header)[0])


def serve_one(conn: socket.socket, mode: str) -> None:
    with conn:
        if read_frame(conn) is None:  # the client's Hello
            return
        if mode == "nohello":
            conn.sendall(frame(b"\xc1 this is not a hello"))
        else:
            conn.sendall(encode(WireDecoder().hello()))
            if read_frame(conn) is None:  # the client's first call
                return
            if mode == "body":
                conn.sendall(frame(b"\xc1\xc1\xc1"))
            elif mode == "type":
                conn.sendall(frame(msgpack.packb([99, 1, "surprise"])))
            elif mode == "huge":
                conn.sendall(struct.pack(">I", 0x7FFFFFFF) + b"\x00" * 16)
            elif mode == "truncated":
                conn.sendall(struct.pack(">I", 100) + b"\x94" + b"\x00" * 9)
                return  # end of stream inside the frame
        while conn.recv(65536):  # keep it open until the client hangs up
            pass


def listen(mode: str) -> int:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)

    def accept_loop() -> None:
        while True:
            conn, _ = sock.accept()
            threading.Thread(target=serve_one, args=(conn, mode), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return int(sock.getsockname()[1])


def main() -> None:
    ports = {mode: listen(mode) for mode in MODES}
    print("READY " + " ".join(f"{m}={p}" for m, p in ports.items()), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
