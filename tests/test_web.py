"""net.web: HTTP/1.1 over our transports, parsed by h11.

Real sockets on every backend, driven by the stdlib's http.client (run in a thread with
``defer_to_thread`` while the reactor serves) or by raw sockets for what http.client will not send;
memory transports with a :class:`net.testing.Clock` for timeouts and flow control; hypothesis for
arbitrary request bytes.
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
from typing import Any, Callable

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from net.defer import Deferred
from net.testing import Clock, Recorder, connect_protocols
from net.web import HTTPChannel, Request, Response, WebLimits, WebService, web_factory

SAFETY = 10.0  # socket timeouts: only a broken test ever waits this long


def echo(request: Request) -> Response:
    """Answers what it was asked, so a test sees what the server parsed."""
    lines = [f"{request.method} {request.path}", f"query={sorted(request.query.items())}",
             f"form={sorted(request.form().items())}", f"body={len(request.body)}"]
    return Response.text("\n".join(lines) + "\n", headers=[("X-Peer-Port", str(request.client.port))])  # type: ignore[attr-defined]


def fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def start(reactor: Any, handler: Callable[[Request], Any], **limits: Any) -> tuple[WebService, int]:
    service = WebService(reactor, "tcp:0:interface=127.0.0.1", handler, **limits)
    await service.start_service()
    assert service.port is not None
    return service, service.port.get_host().port  # type: ignore[union-attr]


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
        sock.sendall(data)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse_responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Every complete response in ``data``, parsed with h11 as a client would."""
    conn = h11.Connection(h11.CLIENT)
    out: list[tuple[int, dict[str, str], bytes]] = []
    conn.receive_data(data)
    status, headers, body = 0, {}, b""
    while True:
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            if not conn.trailing_data[0]:
                return out
            conn.start_next_cycle()
        if conn.our_state is h11.IDLE:  # h11 only reads a response to a request it sent
            conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
            conn.send(h11.EndOfMessage())
        event = conn.next_event()
        if isinstance(event, h11.InformationalResponse):
            out.append((event.status_code, {}, b""))
        elif isinstance(event, h11.Response):
            status, headers, body = event.status_code, {k.decode(): v.decode() for k, v in event.headers}, b""
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            out.append((status, headers, body))
            if conn.their_state is not h11.DONE:  # Connection: close
                return out
        else:  # NEED_DATA: the rest is incomplete
            return out


# -- requests and responses over real sockets -------------------------------------------------


def test_get_and_post(reactor: Any, run: Any) -> None:
    before = fds()

    async def scenario() -> None:
        service, port = await start(reactor, echo)

        def client() -> list[tuple[int, str]]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SAFETY)
            conn.request("GET", "/a%20b?x=1&x=2&empty=")
            r1 = conn.getresponse()
            got = [(r1.status, r1.read().decode())]
            conn.request("POST", "/signup", body="name=al%26ice&pw=p+w",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            r2 = conn.getresponse()
            got.append((r2.status, r2.read().decode()))
            conn.close()
            return got

        try:
            (s1, b1), (s2, b2) = await reactor.defer_to_thread(client)
        finally:
            await service.stop_service()
        assert s1 == 200 and b1.splitlines()[:2] == ["GET /a b", "query=[('empty', ['']), ('x', ['1', '2'])]"]
        assert s2 == 200 and b2.splitlines()[2:] == ["form=[('name', ['al&ice']), ('pw', ['p w'])]", "body=20"]

    run(reactor, scenario())
    assert fds() == before


def test_keep_alive_three_requests_on_one_connection(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service, port = await start(reactor, echo)

        def client() -> list[str | None]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SAFETY)
            peers = []
            for i in range(3):
                conn.request("GET", f"/{i}")
                response = conn.getresponse()
                assert response.status == 200 and response.read().startswith(f"GET /{i}\n".encode())
                peers.append(response.getheader("X-Peer-Port"))
            conn.close()
            return peers

        try:
            peers = await reactor.defer_to_thread(client)
        finally:
            await service.stop_service()
        assert len(set(peers)) == 1  # one client port: the same connection served all three

    run(reactor, scenario())


def test_pipelined_requests_are_answered_in_order(reactor: Any, run: Any) -> None:
    """The first answer comes late (a Deferred), the second at once: order is still kept."""
    def handler(request: Request) -> Response | Deferred[Response]:
        if request.path == "/slow":
            d: Deferred[Response] = Deferred()
            reactor.call_later(0.01, d.callback, Response.text("slow\n"))
            return d
        return Response.text(f"fast {request.path}\n")

    async def scenario() -> None:
        service, port = await start(reactor, handler)
        pipeline = (b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                    b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
                    b"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                    b"GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try:
            data = await reactor.defer_to_thread(raw_exchange, port, pipeline)
        finally:
            await service.stop_service()
        bodies = [body for status, _, body in parse_responses(data)]
        assert bodies == [b"slow\n", b"fast /one\n", b"fast /two\n", b"fast /three\n"]

    run(reactor, scenario())


def test_deferred_and_coroutine_handlers(reactor: Any, run: Any) -> None:
    async def handler(request: Request) -> Response:
        d: Deferred[str] = Deferred()
        reactor.call_later(0, d.callback, "later")
        word = await d
        return Response.text(f"{word} {request.path}\n")

    def deferred_handler(request: Request) -> Deferred[Response]:
        d: Deferred[Response] = Deferred()
        reactor.call_later(0, d.callback, Response.text("deferred\n", status=201))
        return d

    async def scenario() -> None:
        coro_service, coro_port = await start(reactor, handler)
        d_service, d_port = await start(reactor, deferred_handler)

        def client(port: int) -> tuple[int, bytes]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SAFETY)
            conn.request("GET", "/x")
            response = conn.getresponse()
            result = response.status, response.read()
            conn.close()
            return result

        try:
            assert await reactor.defer_to_thread(client, coro_port) == (200, b"later /x\n")
            assert await reactor.defer_to_thread(client, d_port) == (201, b"deferred\n")
        finally:
            await coro_service.stop_service()
            await d_service.stop_service()

    run(reactor, scenario())


def test_handler_exception_is_a_500_and_the_traceback_stays_in_the_log(
        reactor: Any, run: Any, caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: Request) -> Response:
        if request.path == "/boom":
            raise RuntimeError("secret detail of the failure")
        if request.path == "/bad-header":
            return Response(200, [("X-Bad", "line\r\nbreak")], b"")
        if request.path == "/not-a-response":
            return "oops"  # type: ignore[return-value]
        return Response.text("fine\n")

    async def scenario() -> None:
        service, port = await start(reactor, handler)

        def client() -> list[tuple[int, bytes]]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SAFETY)
            got = []
            for path in ("/boom", "/bad-header", "/not-a-response", "/ok"):  # one connection throughout
                conn.request("GET", path)
                response = conn.getresponse()
                got.append((response.status, response.read()))
            conn.close()
            return got

        try:
            got = await reactor.defer_to_thread(client)
        finally:
            await service.stop_service()
        assert [status for status, _ in got] == [500, 500, 500, 200]
        assert all(b"secret" not in body and b"Traceback" not in body for _, body in got)

    with caplog.at_level(logging.ERROR, logger="net.web"):
        run(reactor, scenario())
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "net.web")
    assert "secret detail of the failure" in logged and "Traceback" in logged
    assert "not a net.web.Response" in logged and "HTTP cannot carry" in logged


def test_head_gets_headers_but_no_body(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service, port = await start(reactor, lambda request: Response.text("twelve bytes"))
        try:
            data = await reactor.defer_to_thread(
                raw_exchange, port, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        finally:
            await service.stop_service()
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 12" in head.lower() and rest == b""

    run(reactor, scenario())


def test_expect_100_continue(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service, port = await start(reactor, echo)

        def client() -> tuple[bytes, bytes]:
            with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
                sock.sendall(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n"
                             b"Connection: close\r\n\r\n")
                interim = b""
                while b"\r\n\r\n" not in interim:
                    interim += sock.recv(1)
                sock.sendall(b"abcd")
                return interim, read_all(sock)

        try:
            interim, final = await reactor.defer_to_thread(client)
        finally:
            await service.stop_service()
        assert interim.startswith(b"HTTP/1.1 100 ")
        assert final.startswith(b"HTTP/1.1 200 ") and final.endswith(b"body=4\n")

    run(reactor, scenario())


# -- bad input: the protocol's error, and only that connection suffers -------------------------


def test_huge_header_is_431_and_the_server_keeps_serving(reactor: Any, run: Any) -> None:
    before = fds()

    async def scenario() -> None:
        service, port = await start(reactor, echo, max_header_bytes=4096)

        def client() -> tuple[bytes, int, bytes]:
            # A second client is mid-conversation while the first misbehaves.
            good = http.client.HTTPConnection("127.0.0.1", port, timeout=SAFETY)
            good.request("GET", "/before")
            assert good.getresponse().read().startswith(b"GET /before")
            with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"a" * 8192 + b"\r\n\r\n")
                bad = read_all(sock)
            good.request("GET", "/after")
            response = good.getresponse()
            result = bad, response.status, response.read()
            good.close()
            return result

        try:
            bad, status, body = await reactor.defer_to_thread(client)
        finally:
            await service.stop_service()
        assert bad.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        assert b"connection: close" in bad.lower()
        assert status == 200 and body.startswith(b"GET /after")

    run(reactor, scenario())
    assert fds() == before


def test_huge_body_is_413(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service, port = await start(reactor, echo, max_body_bytes=1000)
        declared = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 2000
        chunked = (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + (b"200\r\n" + b"y" * 512 + b"\r\n") * 3 + b"0\r\n\r\n")
        exact = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n" + b"z" * 1000
        try:
            got = [await reactor.defer_to_thread(raw_exchange, port, data) for data in (declared, chunked, exact)]
        finally:
            await service.stop_service()
        assert got[0].startswith(b"HTTP/1.1 413 ") and b"Content-Length 100000" in got[0]
        assert got[1].startswith(b"HTTP/1.1 413 ") and b"over the limit of 1000 bytes" in got[1]
        assert got[2].startswith(b"HTTP/1.1 200 ") and got[2].endswith(b"body=1000\n")

    run(reactor, scenario())


@pytest.mark.parametrize("data, status", [
    (b"garbage\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400),
    (b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
], ids=["garbage", "no-host", "bad-length", "bad-header-name", "long-target"])
def test_malformed_request_is_refused_and_closed(reactor: Any, run: Any, data: bytes, status: int) -> None:
    async def scenario() -> bytes:
        service, port = await start(reactor, echo, max_target_bytes=2048)
        try:
            # A good request first on the same connection: it is answered, then the bad one closes.
            answer: bytes = await reactor.defer_to_thread(raw_exchange, port, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n" + data)
            return answer
        finally:
            await service.stop_service()

    responses = parse_responses(run(reactor, scenario()))
    assert [s for s, _, _ in responses] == [200, status]
    assert responses[1][1]["connection"] == "close"


def test_slow_client_gets_408_over_a_real_socket(reactor: Any, run: Any) -> None:
    async def scenario() -> bytes:
        service, port = await start(reactor, echo, timeout=0.5)  # the partial request arrives well before
        try:
            answer: bytes = await reactor.defer_to_thread(raw_exchange, port, b"GET / HTTP/1.1\r\nHost: x\r\n")  # no end
            return answer
        finally:
            await service.stop_service()

    assert run(reactor, scenario()).startswith(b"HTTP/1.1 408 Request Timeout\r\n")


def test_over_tls(reactor: Any, run: Any, tmp_path: Any) -> None:
    """The same channel over our TLS transport (no half-close there: a refusal closes at once)."""
    import ssl

    from helpers_net import esc
    from net.tls import make_dev_certs

    certs = make_dev_certs(tmp_path)
    spec = f"tls:0:cert={esc(certs.server_cert)}:key={esc(certs.server_key)}:interface=127.0.0.1"

    async def scenario() -> None:
        service = WebService(reactor, spec, echo, max_header_bytes=2048)
        await service.start_service()
        assert service.port is not None
        port = service.port.get_host().port  # type: ignore[union-attr]
        context = ssl.create_default_context(cafile=str(certs.ca))

        def client() -> tuple[list[str | None], bytes]:
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=SAFETY, context=context)
            peers = []
            for i in range(2):
                conn.request("POST", f"/{i}", body="a=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
                response = conn.getresponse()
                assert response.status == 200 and response.read().startswith(f"POST /{i}\n".encode())
                peers.append(response.getheader("X-Peer-Port"))
            conn.close()
            with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls_sock:
                    tls_sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 4096 + b"\r\n\r\n")
                    refused = b""
                    try:
                        while chunk := tls_sock.recv(65536):
                            refused += chunk
                    except (ssl.SSLEOFError, ConnectionResetError):
                        pass
            return peers, refused

        try:
            peers, refused = await reactor.defer_to_thread(client)
        finally:
            await service.stop_service()
        assert len(set(peers)) == 1
        assert refused.startswith(b"HTTP/1.1 431 ")

    run(reactor, scenario())


# -- sans sockets: timeouts on a Clock, flow control, arbitrary bytes --------------------------


def channel_pair(handler: Callable[[Request], Any] = echo, clock: Any = None, **limits: Any,
                 ) -> tuple[HTTPChannel, Recorder, Any]:
    channel = web_factory(handler, clock=clock, **limits).build_protocol(None)  # type: ignore[arg-type]
    client = Recorder()
    pump = connect_protocols(channel, client)
    return channel, client, pump


def test_timeouts_on_a_clock() -> None:
    clock = Clock()
    # Partial request: 408 once the time is up, not before.
    channel, client, pump = channel_pair(clock=clock, timeout=30)
    pump.client_transport.write(b"GET / HTTP/1.1\r\nHo")
    pump.pump()
    clock.advance(29.9)
    pump.pump()
    assert bytes(client.received) == b""
    clock.advance(0.1)
    pump.pump()
    assert bytes(client.received).startswith(b"HTTP/1.1 408 ") and pump.server_transport.disconnected

    # Idle keep-alive: after an answered request, silence is closed quietly (no stray 408).
    channel, client, pump = channel_pair(clock=clock, timeout=30)
    pump.client_transport.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    pump.pump()
    answered = bytes(client.received)
    assert answered.startswith(b"HTTP/1.1 200 ") and not pump.server_transport.disconnected
    clock.advance(30)
    pump.pump()
    assert bytes(client.received) == answered and pump.server_transport.disconnected

    # A slow handler is not the client's fault: no timeout while it runs.
    pending: Deferred[Response] = Deferred()
    channel, client, pump = channel_pair(lambda r: pending, clock=clock, timeout=30)
    pump.client_transport.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    pump.pump()
    clock.advance(300)
    pending.callback(Response.text("late\n"))
    pump.pump()
    assert bytes(client.received).startswith(b"HTTP/1.1 200 ") and bytes(client.received).endswith(b"late\n")
    assert clock.get_delayed_calls() and not pump.server_transport.disconnected  # idle timer re-armed


def test_output_is_bounded_when_the_client_does_not_read() -> None:
    """100 pipelined requests for 64 KiB each, the client not reading: the server stops handling
    (and reading) once its write buffer is full, and goes on when the client reads again."""
    clock = Clock()
    big = b"x" * 65536
    channel, client, pump = channel_pair(lambda r: Response(200, [], big), clock=clock, timeout=30)
    pump.client_transport.pause_reading()
    pump.client_transport.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 100)
    pump.pump()
    assert channel.requests_handled < 5
    assert pump.server_transport.reading_paused and pump.server_transport.get_write_buffer_size() <= 3 * len(big)
    pump.client_transport.resume_reading()
    pump.pump()
    assert channel.requests_handled == 100 and len(parse_responses(bytes(client.received))) == 100

    # Stalled for the timeout: dropped.
    channel, client, pump = channel_pair(lambda r: Response(200, [], big), clock=clock, timeout=30)
    pump.client_transport.pause_reading()
    pump.client_transport.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 10)
    pump.pump()
    clock.advance(30)
    pump.pump()
    assert pump.server_transport.aborted


def test_pipelined_bytes_behind_a_pending_handler_are_bounded() -> None:
    pending: Deferred[Response] = Deferred()
    channel, client, pump = channel_pair(lambda r: pending, max_header_bytes=1024, max_body_bytes=1024)
    pump.client_transport.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    pump.pump()
    pump.client_transport.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 200)
    pump.pump()
    assert pump.server_transport.reading_paused  # the rest waits in the client's buffer, not ours


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_body_bytes"):
        WebLimits(max_body_bytes=-1)
    with pytest.raises(ValueError, match="timeout"):
        WebLimits(timeout=0)
    with pytest.raises(TypeError):
        web_factory(echo, max_bodybytes=1)


def test_half_close_after_the_last_request_still_gets_the_answer() -> None:
    channel, client, pump = channel_pair()
    pump.client_transport.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    pump.client_transport.write_eof()
    pump.pump()
    assert bytes(client.received).startswith(b"HTTP/1.1 200 ") and pump.server_transport.disconnected


@settings(max_examples=300)
@given(data=st.one_of(
    st.binary(max_size=600),
    st.lists(st.sampled_from([b"GET ", b"POST ", b"/", b"?a=1", b" HTTP/1.1", b" HTTP/1.0", b"\r\n",
                              b"Host: x", b"Content-Length: 3", b"Content-Length: 99999999",
                              b"Transfer-Encoding: chunked", b"Connection: close", b"Expect: 100-continue",
                              b"3\r\nabc", b"0\r\n\r\n", b"abc", b":", b" ", b"\n", b"\x00", b"\xff"]),
             max_size=40).map(b"".join)),
    chunk=st.sampled_from([None, 1, 7]))
def test_arbitrary_bytes_never_crash_the_server(data: bytes, chunk: int | None) -> None:
    errors: list[logging.LogRecord] = []
    catcher = logging.Handler(logging.ERROR)
    catcher.emit = errors.append  # type: ignore[method-assign, assignment]
    logging.getLogger("net.web").addHandler(catcher)
    try:
        serve_bytes(data, chunk)
    finally:
        logging.getLogger("net.web").removeHandler(catcher)
    assert not errors, [r.getMessage() for r in errors]  # no handler failure, no bad response of ours


def serve_bytes(data: bytes, chunk: int | None) -> None:
    clock = Clock()
    channel = web_factory(echo, clock=clock, max_header_bytes=256, max_body_bytes=64,
                          timeout=5).build_protocol(None)  # type: ignore[arg-type]
    client = Recorder()
    pump = connect_protocols(channel, client, chunk_size=chunk)
    pump.client_transport.write(data)
    pump.pump()  # an exception inside the server would propagate here
    pump.client_transport.write_eof()
    pump.pump()
    clock.advance(5)
    pump.pump()
    assert pump.server_transport.disconnected  # every connection ends: EOF, error or timeout
    if bytes(client.received):
        assert bytes(client.received).startswith(b"HTTP/1.1 ")
        for status, _, _ in parse_responses(bytes(client.received)):
            assert status in (100, 200, 400, 408, 413, 414, 431)
