"""net.udp on every backend: UDP over IPv4/IPv6 and Unix datagram sockets, on real loopback sockets.

Each test waits on Deferreds fired by the protocol callbacks (never on sleeps), and every test
checks that the process's file descriptors are back to what they were before it.
"""

from __future__ import annotations

import builtins
import errno
import logging
import os
import socket
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zope.interface.verify import verifyObject

from net import udp
from net.address import IPv4Address, IPv6Address, UNIXAddress
from net.defer import Deferred
from net.error import CannotListenError, ConnectError, ConnectionRefusedError
from net.interfaces import IListeningPort
from net.protocol import DatagramProtocol
from net.udp import DatagramTruncated, InvalidAddressError, SendQueueFull

GROUP = "239.255.77.13"  # administratively scoped; our datagrams stay on lo (interface 127.0.0.1)


@pytest.fixture(autouse=True)
def fds_back_to_baseline() -> Iterator[None]:
    """Runs around the ``reactor`` fixture (autouse fixtures come first), so the reactor's own
    descriptors are closed by the time we compare."""
    before = set(os.listdir("/proc/self/fd"))
    yield
    leaked = set(os.listdir("/proc/self/fd")) - before
    assert not leaked, {fd: _describe_fd(fd) for fd in leaked}


def _describe_fd(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


class Recorder(DatagramProtocol):
    """Records every callback; :meth:`wait_for` fires once a condition on the record holds."""

    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, Any]] = []
        self.errors: list[OSError] = []
        self.refused = 0
        self.started = 0
        self.stopped = 0
        self._waiters: list[tuple[Callable[[], bool], Deferred[None]]] = []

    def wait_for(self, condition: Callable[[], bool]) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._waiters.append((condition, d))
        self._check()
        return d

    def _check(self) -> None:
        for entry in list(self._waiters):
            condition, d = entry
            if condition():
                self._waiters.remove(entry)
                d.callback(None)

    def start_protocol(self) -> None:
        self.started += 1

    def stop_protocol(self) -> None:
        self.stopped += 1
        self._check()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams.append((data, addr))
        self._check()

    def error_received(self, exc: OSError) -> None:
        self.errors.append(exc)
        self._check()

    def connection_refused(self) -> None:
        self.refused += 1
        self._check()


class Echo(Recorder):
    def datagram_received(self, data: bytes, addr: Any) -> None:
        super().datagram_received(data, addr)
        self.transport.write(data, addr)


def _addr(port: Any) -> tuple[str, int]:
    host = port.get_host()
    return host.host, host.port


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def _dead_udp_port() -> int:
    """A loopback port nobody listens on (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# ------------------------------------------------------------------------------------ UDP


def test_echo_between_two_ports(reactor: Any, run: Any) -> None:
    server, client = Echo(), Recorder()
    sport = reactor.listen_udp(0, server, interface="127.0.0.1")
    cport = reactor.listen_udp(0, client, interface="127.0.0.1")
    assert isinstance(sport.get_host(), IPv4Address) and sport.get_host().type == "UDP"
    assert server.started == client.started == 1 and server.transport is sport
    assert verifyObject(IListeningPort, sport)

    async def scenario() -> None:
        cport.write(b"ping", _addr(sport))
        cport.write(bytearray(b"pong"), _addr(sport))
        await client.wait_for(lambda: len(client.datagrams) == 2)
        await sport.stop_listening()
        await cport.stop_listening()

    run(reactor, scenario())
    assert client.datagrams == [(b"ping", _addr(sport)), (b"pong", _addr(sport))]
    assert server.datagrams == [(b"ping", _addr(cport)), (b"pong", _addr(cport))]
    assert server.stopped == client.stopped == 1
    assert server.errors == client.errors == []


def test_many_datagrams(reactor: Any, run: Any) -> None:
    """2000 round trips with 64 in flight: every datagram arrives, whole, through batched reads."""
    total, window = 2000, 64
    server = Echo()
    sport = reactor.listen_udp(0, server, interface="127.0.0.1")

    class Sender(Recorder):
        sent = 0

        def send_next(self) -> None:
            if self.sent < total:
                self.transport.write(b"%06d" % self.sent + b"x" * (self.sent % 512), _addr(sport))
                self.sent += 1

        def datagram_received(self, data: bytes, addr: Any) -> None:
            super().datagram_received(data, addr)
            self.send_next()

    client = Sender()
    cport = reactor.listen_udp(0, client, interface="127.0.0.1")

    async def scenario() -> None:
        for _ in range(window):
            client.send_next()
        await client.wait_for(lambda: len(client.datagrams) == total)
        await sport.stop_listening()
        await cport.stop_listening()

    run(reactor, scenario())
    got = sorted(data for data, _ in client.datagrams)
    assert got == sorted(b"%06d" % i + b"x" * (i % 512) for i in range(total))
    assert server.errors == client.errors == []


def test_reads_are_bounded_per_event(reactor: Any, run: Any) -> None:
    """Two flooded ports take turns: neither is drained before the other gets its first turn."""
    order: list[str] = []

    class Tagged(Recorder):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def datagram_received(self, data: bytes, addr: Any) -> None:
            order.append(self.name)
            super().datagram_received(data, addr)

    a, b = Tagged("a"), Tagged("b")
    aport = reactor.listen_udp(0, a, interface="127.0.0.1")
    bport = reactor.listen_udp(0, b, interface="127.0.0.1")
    aport.datagrams_per_event = bport.datagrams_per_event = 8
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:  # queued before the loop runs
        for i in range(100):
            flood.sendto(b"%d" % i, _addr(aport))
            flood.sendto(b"%d" % i, _addr(bport))

    async def scenario() -> None:
        await a.wait_for(lambda: len(a.datagrams) == 100)
        await b.wait_for(lambda: len(b.datagrams) == 100)
        await aport.stop_listening()
        await bport.stop_listening()

    run(reactor, scenario())
    first_done = min(len(order) - order[::-1].index(name) for name in "ab")
    runs, current = [], 1
    for prev, this in zip(order[:first_done], order[1:first_done]):
        current = current + 1 if prev == this else 1
        runs.append(current)
    assert max(runs) <= 8, order[:40]


@pytest.mark.skipif(not _ipv6_loopback(), reason="this host has no IPv6 loopback (::1)")
def test_ipv6_loopback(reactor: Any, run: Any) -> None:
    server, client = Echo(), Recorder()
    sport = reactor.listen_udp(0, server, interface="::1")
    cport = reactor.listen_udp(0, client, interface="::1")
    assert isinstance(sport.get_host(), IPv6Address) and sport.get_host().host == "::1"
    with pytest.raises(InvalidAddressError, match="an IPv4 address on an IPv6 port"):
        cport.write(b"x", ("127.0.0.1", sport.get_host().port))
    assert cport.get_ttl() == 1  # IPV6_MULTICAST_HOPS
    cport.set_ttl(3)
    assert cport.get_ttl() == 3

    async def scenario() -> None:
        cport.write(b"six", _addr(sport))
        await client.wait_for(lambda: len(client.datagrams) == 1)
        await sport.stop_listening()
        await cport.stop_listening()

    run(reactor, scenario())
    assert client.datagrams == [(b"six", ("::1", sport.get_host().port))]


def test_ipv6_address_on_ipv4_port_is_rejected(reactor: Any) -> None:
    port = reactor.listen_udp(0, Recorder(), interface="127.0.0.1")
    try:
        with pytest.raises(InvalidAddressError, match="an IPv6 address on an IPv4 port"):
            port.write(b"x", ("::1", 9))
    finally:
        port.stop_listening()


def test_host_names_are_rejected_not_resolved(reactor: Any) -> None:
    """As in Twisted: UDP takes IP addresses only, so no DNS lookup ever blocks the loop."""
    with pytest.raises(InvalidAddressError, match="not a host name"):
        reactor.listen_udp(0, Recorder(), interface="localhost")
    port = reactor.listen_udp(0, Recorder(), interface="127.0.0.1")
    try:
        with pytest.raises(InvalidAddressError, match="give an IP address, not a host name"):
            port.write(b"x", ("localhost", 9))
        with pytest.raises(InvalidAddressError, match="not a host name"):
            port.connect("localhost", 9)
        with pytest.raises(InvalidAddressError, match="port must be an int"):
            port.write(b"x", ("127.0.0.1", 0))
        with pytest.raises(InvalidAddressError, match=r"\(host, port\) tuple"):
            port.write(b"x", "127.0.0.1:9")
        with pytest.raises(ValueError, match="not connected"):
            port.write(b"x")
    finally:
        port.stop_listening()


def test_cannot_listen_on_a_taken_port(reactor: Any) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(CannotListenError) as info:
            reactor.listen_udp(taken.getsockname()[1], Recorder(), interface="127.0.0.1")
    assert info.value.errno == errno.EADDRINUSE


def test_connected_udp_gets_connection_refused(reactor: Any, run: Any) -> None:
    """A real ICMP port unreachable on loopback comes back as connection_refused()."""
    client = Recorder()
    cport = reactor.listen_udp(0, client, interface="127.0.0.1")
    dead = _dead_udp_port()
    cport.connect("127.0.0.1", dead)
    assert cport.get_peer() == IPv4Address("UDP", "127.0.0.1", dead)
    with pytest.raises(InvalidAddressError, match="connected to"):
        cport.write(b"x", ("127.0.0.1", dead + 1 if dead < 65535 else dead - 1))
    with pytest.raises(RuntimeError, match="already connected"):
        cport.connect("127.0.0.1", dead)

    async def scenario() -> None:
        cport.write(b"anyone?")
        await client.wait_for(lambda: client.refused >= 1)
        await cport.stop_listening()

    run(reactor, scenario())
    assert client.errors == []  # refused is not reported twice


def test_connected_port_hears_only_its_peer(reactor: Any, run: Any) -> None:
    """Datagrams from others are dropped, even one already queued before connect()."""
    client, peer = Recorder(), Echo()
    cport = reactor.listen_udp(0, client, interface="127.0.0.1")
    pport = reactor.listen_udp(0, peer, interface="127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.sendto(b"before connect", _addr(cport))
        cport.connect(*_addr(pport))
        stranger.sendto(b"after connect", _addr(cport))

    async def scenario() -> None:
        cport.write(b"hello")
        await client.wait_for(lambda: len(client.datagrams) == 1)
        await cport.stop_listening()
        await pport.stop_listening()

    run(reactor, scenario())
    assert client.datagrams == [(b"hello", _addr(pport))]


def test_send_errors_reach_error_received(reactor: Any, run: Any) -> None:
    """EACCES (broadcast not allowed) and EMSGSIZE: reported from the loop, with a hint."""
    receiver, sender = Recorder(), Recorder()
    rport = reactor.listen_udp(0, receiver, interface="127.255.255.255")
    sport = reactor.listen_udp(0, sender, interface="127.0.0.1")
    broadcast = ("127.255.255.255", rport.get_host().port)

    async def scenario() -> None:
        assert not sport.get_broadcast_allowed()
        sport.write(b"to all", broadcast)
        sport.write(b"x" * 70000, ("127.0.0.1", rport.get_host().port))
        assert sender.errors == []  # not from inside write()
        await sender.wait_for(lambda: len(sender.errors) == 2)
        sport.set_broadcast_allowed(True)
        assert sport.get_broadcast_allowed()
        sport.write(b"to all", broadcast)
        await receiver.wait_for(lambda: len(receiver.datagrams) == 1)
        await rport.stop_listening()
        await sport.stop_listening()

    run(reactor, scenario())
    denied, too_big = sender.errors
    assert isinstance(denied, PermissionError) and "set_broadcast_allowed(True)" in str(denied)
    assert too_big.errno == errno.EMSGSIZE and "70000 bytes" in str(too_big)
    assert receiver.datagrams == [(b"to all", _addr(sport))]


def test_stopping_the_reactor_closes_unix_datagram_ports_only(reactor: Any, run: Any, tmp_path: Path) -> None:
    """The reactor's shutdown closes a Unix datagram port still open (removing its file) and tells
    its protocol; one closed before is left alone; a UDP port stays open for the next run."""
    unix_protocol = Recorder()
    unix_port = reactor.listen_unix_datagram(str(tmp_path / "d.sock"), unix_protocol)
    early = reactor.listen_unix_datagram(str(tmp_path / "early.sock"), DatagramProtocol())
    early.stop_listening()
    inet = reactor.listen_udp(0, DatagramProtocol(), interface="127.0.0.1")

    async def nothing() -> None:
        pass

    try:
        run(reactor, nothing())
        assert unix_port.socket.fileno() == -1 and unix_protocol.stopped == 1
        assert os.listdir(tmp_path) == []
        assert inet.socket.fileno() >= 0
    finally:
        inet.stop_listening()


def test_error_received_logs_by_default(reactor: Any, run: Any, caplog: pytest.LogCaptureFixture) -> None:
    sport = reactor.listen_udp(0, DatagramProtocol(), interface="127.0.0.1")

    async def scenario() -> None:
        sport.write(b"x" * 70000, ("127.0.0.1", 9))
        await sport.stop_listening()  # stop_protocol comes after the queued report

    with caplog.at_level(logging.WARNING, logger="net.protocol"):
        run(reactor, scenario())
    assert any("datagram error" in r.getMessage() and "70000 bytes" in r.getMessage() for r in caplog.records)


def test_truncated_datagram_is_reported_and_dropped(reactor: Any, run: Any) -> None:
    receiver = Recorder()
    rport = reactor.listen_udp(0, receiver, interface="127.0.0.1", max_packet_size=16)
    sport = reactor.listen_udp(0, Recorder(), interface="127.0.0.1")

    async def scenario() -> None:
        sport.write(b"y" * 100, _addr(rport))
        sport.write(b"fits", _addr(rport))
        await receiver.wait_for(lambda: len(receiver.datagrams) == 1)
        await rport.stop_listening()
        await sport.stop_listening()

    run(reactor, scenario())
    assert receiver.datagrams == [(b"fits", _addr(sport))]
    (error,) = receiver.errors
    assert isinstance(error, DatagramTruncated) and error.errno == errno.EMSGSIZE
    assert error.address == _addr(sport) and "max_packet_size=16" in str(error)


def test_bad_datagram_handler_does_not_close_the_port(reactor: Any, run: Any,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    class Picky(Recorder):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            if data == b"bad":
                raise ValueError("cannot parse")
            super().datagram_received(data, addr)

    receiver = Picky()
    rport = reactor.listen_udp(0, receiver, interface="127.0.0.1")
    sport = reactor.listen_udp(0, Recorder(), interface="127.0.0.1")

    async def scenario() -> None:
        sport.write(b"bad", _addr(rport))
        sport.write(b"good", _addr(rport))
        await receiver.wait_for(lambda: len(receiver.datagrams) == 1)
        await rport.stop_listening()
        await sport.stop_listening()

    with caplog.at_level(logging.ERROR, logger="net.udp"):
        run(reactor, scenario())
    assert receiver.datagrams == [(b"good", _addr(sport))]
    assert any("datagram_received failed" in r.getMessage() for r in caplog.records)


def test_stop_listening_fires_once_and_the_fd_is_gone(reactor: Any, run: Any) -> None:
    proto = Recorder()
    port = reactor.listen_udp(0, proto, interface="127.0.0.1")
    fd = port.socket.fileno()
    fired: list[int] = []

    async def scenario() -> None:
        d1 = port.stop_listening()
        d2 = port.stop_listening()
        d1.add_callback(lambda _: fired.append(1))
        d2.add_callback(lambda _: fired.append(2))
        assert proto.stopped == 0  # from the loop, not from inside stop_listening()
        await d1
        await d2
        await port.stop_listening()

    run(reactor, scenario())
    assert fired == [1, 2] and proto.stopped == 1
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF
    with pytest.raises(RuntimeError, match="closed"):
        port.write(b"late", ("127.0.0.1", 9))


def test_start_protocol_failure_closes_the_socket(reactor: Any) -> None:
    class Broken(DatagramProtocol):
        def start_protocol(self) -> None:
            raise RuntimeError("no")

    with pytest.raises(RuntimeError, match="no"):
        reactor.listen_udp(0, Broken(), interface="127.0.0.1")
    # the autouse fixture checks that its socket is closed


def test_socket_options(reactor: Any) -> None:
    port = reactor.listen_udp(0, Recorder(), interface="127.0.0.1")
    try:
        assert port.get_ttl() == 1
        for ttl in (0, 5, 255):
            port.set_ttl(ttl)
            assert port.get_ttl() == ttl
        for bad in (256, -1, True, "2"):
            with pytest.raises(ValueError, match="TTL"):
                port.set_ttl(bad)
        port.set_loopback_mode(False)
        assert port.get_loopback_mode() is False
        port.set_loopback_mode(True)
        assert port.get_loopback_mode() is True
        port.set_outgoing_interface("127.0.0.1")
        assert port.get_outgoing_interface() == "127.0.0.1"
        with pytest.raises(InvalidAddressError, match="not a multicast group"):
            port.join_group("127.0.0.1")
        with pytest.raises(InvalidAddressError, match="IPv6 group on an IPv4 port"):
            port.join_group("ff02::1")
    finally:
        port.stop_listening()


def _multicast_or_skip(port: Any) -> None:
    try:
        port.join_group(GROUP, "127.0.0.1")
    except OSError as exc:
        port.stop_listening()
        pytest.skip(f"no IPv4 multicast on loopback in this sandbox: {exc}")


def test_multicast_on_loopback(reactor: Any, run: Any) -> None:
    member, other_member, sender = Echo(), Recorder(), Recorder()
    mport = udp.listen_udp(reactor, 0, member, interface=GROUP, listen_multiple=True)
    _multicast_or_skip(mport)
    group_port = mport.get_host().port
    oport = udp.listen_udp(reactor, group_port, other_member, interface=GROUP, listen_multiple=True)
    oport.join_group(GROUP, "127.0.0.1")
    sport = reactor.listen_udp(0, sender, interface="127.0.0.1")
    sport.set_outgoing_interface("127.0.0.1")
    sport.set_loopback_mode(True)
    sport.set_ttl(1)

    async def scenario() -> None:
        sport.write(b"who is there?", (GROUP, group_port))
        await member.wait_for(lambda: len(member.datagrams) == 1)
        await other_member.wait_for(lambda: len(other_member.datagrams) == 1)
        await sender.wait_for(lambda: len(sender.datagrams) == 1)  # the unicast echo
        await mport.stop_listening()
        await oport.stop_listening()
        await sport.stop_listening()

    try:
        with pytest.raises(OSError) as twice:
            mport.join_group(GROUP, "127.0.0.1")
        assert twice.value.errno == errno.EADDRINUSE and GROUP in str(twice.value)
        run(reactor, scenario())
    finally:
        for p in (mport, oport, sport):
            p.stop_listening()
    assert member.datagrams == other_member.datagrams == [(b"who is there?", _addr(sport))]
    assert sender.datagrams == [(b"who is there?", ("127.0.0.1", group_port))]


def test_leave_group(reactor: Any) -> None:
    port = reactor.listen_udp(0, Recorder(), interface=GROUP)
    _multicast_or_skip(port)
    try:
        port.leave_group(GROUP, "127.0.0.1")
        with pytest.raises(OSError) as info:
            port.leave_group(GROUP, "127.0.0.1")
        assert info.value.errno == errno.EADDRNOTAVAIL
    finally:
        port.stop_listening()


def _ipv6_multicast_on_loopback() -> str | None:
    """None if an ff01:: group works on lo here, else why not."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as r, \
                socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            index = socket.if_nametoindex("lo")
            r.bind(("::", 0))
            r.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                         socket.inet_pton(socket.AF_INET6, "ff01::4d") + index.to_bytes(4, "little"))
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            s.sendto(b"probe", ("ff01::4d", r.getsockname()[1]))
    except OSError as exc:
        return str(exc)
    return None


@pytest.mark.skipif(_ipv6_multicast_on_loopback() is not None,
                    reason=f"no IPv6 multicast on lo here: {_ipv6_multicast_on_loopback()}")
def test_ipv6_multicast_on_loopback(reactor: Any, run: Any) -> None:
    member, sender = Recorder(), Recorder()
    mport = reactor.listen_udp(0, member, interface="ff01::4d")
    mport.join_group("ff01::4d", "lo")
    sport = reactor.listen_udp(0, sender, interface="::1")
    sport.set_outgoing_interface("lo")
    assert sport.get_outgoing_interface() == "lo"

    async def scenario() -> None:
        sport.write(b"six", ("ff01::4d", mport.get_host().port))
        await member.wait_for(lambda: len(member.datagrams) == 1)
        await mport.stop_listening()
        await sport.stop_listening()

    run(reactor, scenario())
    assert member.datagrams[0][0] == b"six"


# ------------------------------------------------------------------------ Unix datagram sockets


@pytest.fixture(params=["path", "abstract"])
def unix_address(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "path":
        return str(tmp_path / "echo.sock")
    return f"@pbroker-test-{uuid.uuid4().hex}"


def test_unix_datagram_echo(reactor: Any, run: Any, unix_address: str) -> None:
    server, client, loose = Echo(), Recorder(), Recorder()
    sport = reactor.listen_unix_datagram(unix_address, server)
    assert sport.get_host() == UNIXAddress(unix_address)
    if not unix_address.startswith("@"):
        assert stat.S_IMODE(os.stat(unix_address).st_mode) == 0o660
    cport = udp.connect_unix_datagram(reactor, unix_address, client)
    lport = udp.connect_unix_datagram(reactor, None, loose)  # unconnected: write(data, path)
    client_name = cport.get_host().name
    assert client_name is not None and client_name.startswith("@")  # autobound
    assert cport.get_peer() == UNIXAddress(unix_address) and lport.get_peer() is None

    async def scenario() -> None:
        cport.write(b"hi")
        lport.write(b"there", unix_address)
        await client.wait_for(lambda: len(client.datagrams) == 1)
        await loose.wait_for(lambda: len(loose.datagrams) == 1)
        for port in (sport, cport, lport):
            await port.stop_listening()

    run(reactor, scenario())
    assert client.datagrams == [(b"hi", unix_address)]
    assert loose.datagrams == [(b"there", unix_address)]
    assert sorted(server.datagrams) == sorted([(b"hi", client_name), (b"there", lport.get_host().name)])
    if not unix_address.startswith("@"):
        assert not os.path.exists(unix_address)  # removed by stop_listening


def test_unix_datagram_from_unbound_sender(reactor: Any, run: Any, tmp_path: Path) -> None:
    receiver = Recorder()
    path = str(tmp_path / "r.sock")
    rport = reactor.listen_unix_datagram(path, receiver)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as anonymous:
        anonymous.sendto(b"who?", path)

    async def scenario() -> None:
        await receiver.wait_for(lambda: len(receiver.datagrams) == 1)
        await rport.stop_listening()

    run(reactor, scenario())
    assert receiver.datagrams == [(b"who?", None)]


def test_unix_stale_socket_file_is_replaced(reactor: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as crashed:
        crashed.bind(path)  # closed without removing its file, as after a crash
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    port = reactor.listen_unix_datagram(path, Recorder())
    port.stop_listening()
    assert not os.path.exists(path)


def test_unix_live_socket_or_other_file_is_not_replaced(reactor: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "live.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as live:
        live.bind(path)
        with pytest.raises(CannotListenError, match="another process is bound"):
            reactor.listen_unix_datagram(path, Recorder())
        assert os.path.exists(path)
    os.unlink(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stream:
        stream.bind(path)
        with pytest.raises(CannotListenError, match="stream socket"):
            reactor.listen_unix_datagram(path, Recorder())
    os.unlink(path)
    Path(path).write_text("precious")
    with pytest.raises(CannotListenError, match="not a socket"):
        reactor.listen_unix_datagram(path, Recorder())
    assert Path(path).read_text() == "precious"


def test_unix_connect_errors(reactor: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "nobody.sock")
    with pytest.raises(ConnectError, match="does not exist"):
        udp.connect_unix_datagram(reactor, path, Recorder())
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as crashed:
        crashed.bind(path)
    with pytest.raises(ConnectionRefusedError, match="stale socket file"):
        udp.connect_unix_datagram(reactor, path, Recorder())


def test_unix_connected_peer_gone(reactor: Any, run: Any) -> None:
    name = f"@pbroker-test-{uuid.uuid4().hex}"
    server, client = Recorder(), Recorder()
    sport = reactor.listen_unix_datagram(name, server)
    cport = udp.connect_unix_datagram(reactor, name, client)

    async def scenario() -> None:
        cport.write(b"one")
        await server.wait_for(lambda: len(server.datagrams) == 1)
        await sport.stop_listening()
        cport.write(b"two")
        await client.wait_for(lambda: client.refused == 1)
        await cport.stop_listening()

    run(reactor, scenario())
    assert client.errors == [] and server.datagrams == [(b"one", cport.get_host().name)]


def a_receiver_that_does_not_read(reactor: Any, connected: bool = True) -> tuple[str, Recorder, Any, Recorder, Any]:
    """For the send-queue tests: a paused Unix datagram receiver on a fresh abstract name, and a
    sender (connected to it, or not); ``(name, receiver, receiver's port, sender, sender's port)``."""
    name = f"@pbroker-test-{uuid.uuid4().hex}"
    receiver, sender = Recorder(), Recorder()
    rport = reactor.listen_unix_datagram(name, receiver)
    rport.pause_reading()
    sport = udp.connect_unix_datagram(reactor, name if connected else None, sender)
    return name, receiver, rport, sender, sport


@pytest.mark.parametrize("connected", [True, False], ids=["connected", "unconnected"])
@pytest.mark.parametrize("bound", ["count", "bytes"])
def test_send_queue_is_bounded(reactor: Any, run: Any, connected: bool, bound: str) -> None:
    """A receiver that does not read: the kernel takes a few, the queue a few more, the rest are
    dropped and reported; once it reads again, every datagram not reported arrives, in order."""
    total = 60
    name, receiver, rport, sender, sport = a_receiver_that_does_not_read(reactor, connected)
    if bound == "count":
        sport.max_queued_datagrams = 5
    else:
        sport.max_queued_bytes = 5 * 100

    async def scenario() -> None:
        for i in range(total):
            datagram = b"%03d" % i + b"." * 97
            if connected:
                sport.write(datagram)
            else:
                sport.write(datagram, name)
        assert sport.get_queued_datagrams() == 5 and sport.get_write_buffer_size() == 500
        await sender.wait_for(lambda: len(sender.errors) > 0)
        rport.resume_reading()
        await receiver.wait_for(lambda: len(receiver.datagrams) + len(sender.errors) == total)
        assert sport.get_queued_datagrams() == 0
        await rport.stop_listening()
        await sport.stop_listening()

    run(reactor, scenario())
    assert sender.errors and all(isinstance(e, SendQueueFull) and e.errno == errno.ENOBUFS
                                 for e in sender.errors)
    assert "max_queued_datagrams=" in str(sender.errors[0])
    numbers = [int(data[:3]) for data, _ in receiver.datagrams]
    assert numbers == sorted(numbers) and len(numbers) == total - len(sender.errors)


def test_stop_listening_sends_the_queue_first(reactor: Any, run: Any) -> None:
    _, receiver, rport, sender, sport = a_receiver_that_does_not_read(reactor)

    async def scenario() -> None:
        for i in range(20):
            sport.write(b"%d" % i)
        queued = sport.get_queued_datagrams()
        assert queued > 0
        stopped = sport.stop_listening()
        assert sport.is_closing() and not stopped.called
        with pytest.raises(RuntimeError, match="closing"):
            sport.write(b"late")
        rport.resume_reading()
        await stopped
        await receiver.wait_for(lambda: len(receiver.datagrams) == 20)
        await rport.stop_listening()

    run(reactor, scenario())
    assert [data for data, _ in receiver.datagrams] == [b"%d" % i for i in range(20)]
    assert sender.errors == [] and sender.stopped == 1


def test_drain_timeout_reports_what_was_left(reactor: Any, run: Any) -> None:
    _, receiver, rport, sender, sport = a_receiver_that_does_not_read(reactor)
    sport.drain_timeout = 0.05

    async def scenario() -> int:
        for i in range(20):
            sport.write(b"%d" % i)
        left: int = sport.get_queued_datagrams()
        await sport.stop_listening()
        await rport.stop_listening()
        return left

    left = run(reactor, scenario())
    (error,) = sender.errors
    assert isinstance(error, SendQueueFull) and f"closed with {left} datagrams" in str(error)


def test_unix_write_address_types(reactor: Any) -> None:
    port = udp.connect_unix_datagram(reactor, None, Recorder())
    try:
        with pytest.raises(InvalidAddressError, match="path or '@name'"):
            port.write(b"x", "")
        with pytest.raises(ValueError, match="not connected"):
            port.write(b"x")
    finally:
        port.stop_listening()


@settings(max_examples=60)
@given(st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0xD7FF), min_size=1, max_size=40))
def test_unix_names_round_trip(name: str) -> None:
    """How '@name' and paths map to the kernel's addresses and back (what get_host shows)."""
    for shown in ("@" + name, "/tmp/" + name):
        if len(os.fsencode(shown)) > 100:
            continue
        assert udp._unix_name(udp._unix_sockaddr(shown)) == shown


def test_unconnected_sender_to_a_full_receiver_does_not_spin(reactor: Any, run: Any) -> None:
    """The kernel calls an unconnected Unix socket writable while the receiver it writes to is
    full; the port then waits between attempts instead of retrying on every loop round."""
    name, receiver, rport, sender, sport = a_receiver_that_does_not_read(reactor, connected=False)
    attempts = [0]
    on_writable = sport._on_writable

    def counting() -> None:
        attempts[0] += 1
        on_writable()

    sport._on_writable = counting  # type: ignore[method-assign]  # what the reactor is handed at the first EAGAIN
    rounds = 200

    async def scenario() -> None:
        while sport.get_queued_datagrams() == 0:
            sport.write(b"x", name)
        done: Deferred[None] = Deferred()

        def spin(left: int) -> None:  # one call_soon per loop round
            if left:
                reactor.call_soon(spin, left - 1)
            else:
                done.callback(None)

        spin(rounds)
        await done
        rport.resume_reading()
        await sport.stop_listening()  # drains what is queued first
        await rport.stop_listening()

    run(reactor, scenario())
    assert 1 <= attempts[0] < rounds // 2, attempts[0]
    assert sender.errors == []


def test_unix_write_to_nobody_is_reported(reactor: Any, run: Any, tmp_path: Path) -> None:
    sender = Recorder()
    port = udp.connect_unix_datagram(reactor, None, sender)
    missing, stale = str(tmp_path / "missing.sock"), str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as crashed:
        crashed.bind(stale)

    async def scenario() -> None:
        port.write(b"x", missing)
        port.write(b"x", stale)
        await sender.wait_for(lambda: len(sender.errors) == 2)
        await port.stop_listening()

    run(reactor, scenario())
    no_file, nobody = sender.errors
    assert isinstance(no_file, FileNotFoundError) and "is the receiver running?" in str(no_file)
    assert isinstance(nobody, builtins.ConnectionRefusedError)  # OSError(ECONNREFUSED, ...) is one
    assert "stale socket file" in str(nobody) and sender.refused == 0
