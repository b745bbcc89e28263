"""Unix stream sockets: connections, listening ports, a connector and ``unix:`` endpoint strings.

``listen_unix(reactor, "/run/app.sock", factory)`` / ``connect_unix(reactor, "/run/app.sock",
client_factory)``; ``"@name"`` is Linux's abstract namespace (no file, no permissions: any process
of the network namespace may connect, so check :meth:`UnixConnection.get_peer_credentials`).
The transports are :class:`net.tcp.Connection`\\ s, so everything a TCP connection does (write
queue, flow control, producers, half-close) a Unix one does too; what is Unix's own:

* **Stale socket files.** A socket file outlives a crashed server and would make the next
  ``bind()`` fail. Each port holds an ``flock`` on ``PATH.lock`` (holding our pid) for its life: if
  the lock can be taken, nobody of ours listens and an existing socket file at PATH is stale,
  unless something that does not use the lock answers on it, which is asked. A stale file is
  replaced; a live one refuses with ``CannotListenError`` naming the pid. A file at PATH that is
  not a socket is never deleted. ``stop_listening()`` removes both files. The kernel drops the
  lock when the process dies, so no pid is ever checked for liveness.
* **Peer credentials.** :meth:`UnixConnection.get_peer_credentials` is the peer's pid, uid and gid
  as the kernel saw them at ``connect()``/``listen()`` (``SO_PEERCRED``, Linux).
* **Descriptor passing.** :meth:`UnixConnection.send_fds` sends descriptors (``SCM_RIGHTS``) with
  a few bytes, in order with ordinary writes; a protocol that defines ``fds_received(fds)`` gets
  them before the ``data_received`` of the bytes they came with. See :meth:`send_fds` for who
  owns which descriptor when.

Connection caps: ``max_connections`` works as for TCP; ``max_connections_per_host`` does not
apply (every peer is local and has no address to count by) and is refused.

TLS over a Unix socket: the endpoint strings take ``net.tls``'s options (server ``cert=``,
``key=``, ``ca=``; client ``ca=``, ``cert=``, ``key=``, ``hostname=``), or wrap a factory with
:func:`net.tls.wrap_server_factory`/:func:`net.tls.wrap_client_factory` and pass it to
:func:`listen_unix`/:func:`connect_unix`. See docs/TRANSPORTS.md, "Unix sockets".
"""

from __future__ import annotations

import array
import errno
import logging
import os
import socket
import stat
import struct
import sys
from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple

from zope.interface import Interface, implementer

from .address import Address, UNIXAddress, unix_address
from .defer import Deferred, Failure, fail, succeed
from .endpoints import WrappingClientFactory, _int, _limit, _timeout, register_endpoint_type
from .error import CannotListenError, ConnectError, ConnectionLost, ConnectionRefusedError
from .interfaces import IConnector, IListeningPort, IStreamClientEndpoint, IStreamServerEndpoint, ITransport
from .connector import StreamConnector
from .tcp import Connection, Port

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from OpenSSL import SSL

    from .contracts import (
        ClientProtocolFactory,
        ListeningPort,
        ProtocolFactory,
        Reactor,
        ReactorIO,
        StreamProtocol,
    )

__all__ = [
    "MAX_FDS_PER_MESSAGE",
    "PeerCredentials",
    "IUNIXTransport",
    "UnixConnection",
    "UnixPort",
    "UnixConnector",
    "listen_unix",
    "connect_unix",
    "UNIXServerEndpoint",
    "UNIXClientEndpoint",
]

log = logging.getLogger(__name__)

MAX_FDS_PER_MESSAGE = 64
"""Descriptors one :meth:`~UnixConnection.send_fds` may carry, and one read accepts: the kernel
closes any beyond it (and we log that), so a peer cannot fill our descriptor table in one go."""

_ON_LINUX = sys.platform.startswith("linux")
_WOULD_BLOCK = (BlockingIOError, InterruptedError)
_FD_SIZE = array.array("i").itemsize
_ANCILLARY_SPACE = socket.CMSG_SPACE(MAX_FDS_PER_MESSAGE * _FD_SIZE)
_RECV_FLAGS = getattr(socket, "MSG_CMSG_CLOEXEC", 0)  # received descriptors are not inherited
_CONNECT_PENDING = {errno.EINPROGRESS, errno.EALREADY, errno.EINTR}
_BUSY_RETRY_FIRST = 0.001
_BUSY_RETRY_MAX = 0.1
"""A full listen queue makes a Unix ``connect()`` fail with EAGAIN (it does not wait as TCP's
does): the connector retries from this delay, doubling up to the max, until its timeout."""


class PeerCredentials(NamedTuple):
    """Who is at the other end, as the kernel saw it when the connection was made."""

    pid: int
    uid: int
    gid: int


class IUNIXTransport(ITransport):
    """A Unix stream transport: an ITransport that knows its peer and carries descriptors.

    Contract: :class:`net.contracts.UNIXTransport`."""

    # zope declares methods without self (see net/interfaces.py); mypy reads them as broken methods.
    def get_peer_credentials() -> PeerCredentials:  # type: ignore[misc, empty-body]
        """The peer's pid, uid and gid (``SO_PEERCRED``); NotImplementedError off Linux."""

    def send_fds(fds: Sequence[int], data: bytes = b"\0") -> None:
        """Send duplicates of ``fds`` with ``data`` (non-empty), in order with other writes."""


def _describe(path: str) -> str:
    return f"the abstract unix socket {path}" if path.startswith("@") else f"the unix socket {path}"


def _sockaddr(path: str) -> str | bytes:
    """What ``bind``/``connect`` take for ``path``: ``@name`` becomes ``\\0name`` (Linux only)."""
    if not path.startswith("@"):
        return path
    if not _ON_LINUX:
        raise ValueError(f"{path!r}: the abstract namespace (@name) exists on Linux only; use a file path")
    return b"\0" + os.fsencode(path[1:])


def _check_path(path: Any) -> str:
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"a unix socket path is a str, got {type(path).__name__}")
    if not path or path == "@":
        raise ValueError("a unix socket path must not be empty (an abstract name is '@' and at least one character)")
    return path


def _lost_from(exc: OSError) -> ConnectionLost:
    lost = ConnectionLost(f"Connection lost: {exc.strerror or exc}.")
    lost.errno = exc.errno
    lost.__cause__ = exc
    return lost


def _close_fds(fds: Iterable[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _fds_in(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors of every ``SCM_RIGHTS`` message in ``recvmsg``'s ancillary data."""
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % _FD_SIZE])
    return list(fds)


# -- the transport ---------------------------------------------------------------------------------


@implementer(IUNIXTransport)
class UnixConnection(Connection):
    """A connected Unix stream socket: a :class:`~net.tcp.Connection` with peer credentials and
    descriptor passing.

    Sending descriptors relies on Connection sending every byte through ``self._send`` and
    ``self._sendmsg``: while descriptors are pending those are replaced by methods that cut the
    stream at each one's first byte and attach them there, and restored once all are sent, so
    ordinary traffic pays nothing for the feature.
    """

    def __init__(self, sock: socket.socket, protocol: StreamProtocol, reactor: ReactorIO, **kwargs: Any) -> None:
        kwargs["kind"] = "UNIX"
        super().__init__(sock, protocol, reactor, **kwargs)
        self._credentials: PeerCredentials | None = None
        if hasattr(socket, "SO_PEERCRED"):  # read now: still there after the connection closed
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("iII"))
            self._credentials = PeerCredentials(*struct.unpack("iII", raw))
        # Descriptors waiting to be sent: (stream offset of their first byte, our duplicates).
        # Offsets count the bytes sent (_sent) since the first of them was queued.
        self._fd_marks: deque[tuple[int, list[int]]] = deque()
        self._sent = 0
        self._truncation_logged = False

    # -- peer credentials ----------------------------------------------------------------------

    def get_peer_credentials(self) -> PeerCredentials:
        """The peer's pid, uid and gid when it connected (or listened): ``SO_PEERCRED``.

        The pid is 0 if the peer is in another pid namespace. Linux only (NotImplementedError
        elsewhere).
        """
        if self._credentials is None:
            raise NotImplementedError(f"peer credentials need SO_PEERCRED (Linux); not available on {sys.platform}")
        return self._credentials

    # -- sending descriptors -------------------------------------------------------------------

    def send_fds(self, fds: Sequence[int], data: bytes = b"\0") -> None:
        """Send ``fds`` to the peer along with ``data``, after everything written before.

        The descriptors are duplicated at once, so the caller may close its own right away; the
        duplicates are closed once sent, or when the connection closes first (then the peer
        never gets them). ``data`` (at least one byte, which carries the descriptors) is part
        of the byte stream like any write. At most :data:`MAX_FDS_PER_MESSAGE` per call.
        Ignored, like ``write``, once the connection is closing.
        """
        fds = list(fds)
        if not fds or len(fds) > MAX_FDS_PER_MESSAGE:
            raise ValueError(f"send_fds takes 1 to {MAX_FDS_PER_MESSAGE} descriptors, got {len(fds)}; "
                             "split bigger sets over several calls")
        if not all(isinstance(fd, int) and not isinstance(fd, bool) and fd >= 0 for fd in fds):
            raise TypeError(f"send_fds takes descriptor numbers (ints >= 0), got {fds!r}")
        if not len(memoryview(data)):
            raise ValueError("send_fds needs at least one byte of data to carry the descriptors (default b'\\0')")
        if self.disconnecting or self.disconnected:
            return
        duplicates: list[int] = []
        try:
            for fd in fds:
                duplicates.append(os.dup(fd))
        except OSError:
            _close_fds(duplicates)
            raise
        if not self._fd_marks:
            self._sent = 0
            # Connection sends through these two attributes (see the class docstring).
            self._send, self._sendmsg = self._send_marked, self._sendmsg_marked  # type: ignore[assignment]
        mark = (self._sent + self.get_write_buffer_size(), duplicates)
        self._fd_marks.append(mark)
        try:
            self.write(data)
        except BaseException:  # e.g. RuntimeError after write_eof(): nothing of this call stays
            if self._fd_marks and self._fd_marks[-1] is mark:
                self._fd_marks.pop()
                _close_fds(duplicates)
            if not self._fd_marks:
                self._send, self._sendmsg = self.socket.send, getattr(self.socket, "sendmsg", None)
            raise

    def _send_marked(self, data: Any) -> int:
        """``socket.send`` for while descriptors are pending: never sends past the next one's
        first byte without it, and sends it with exactly the bytes up to the following one."""
        sock = self.socket
        if not self._fd_marks:  # dropped by _close
            return sock.send(data)
        offset, fds = self._fd_marks[0]
        ahead = offset - self._sent
        if ahead > 0:
            if ahead >= len(data):
                sent = sock.send(data)
            else:
                with memoryview(data) as view, view[:ahead] as part:
                    sent = sock.send(part)
        else:
            end = self._fd_marks[1][0] - offset if len(self._fd_marks) > 1 else len(data)
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
            if end >= len(data):
                sent = sock.sendmsg([data], rights)
            else:
                with memoryview(data) as view, view[:end] as part:
                    sent = sock.sendmsg([part], rights)
            if sent:  # the descriptors went with these bytes
                self._fd_marks.popleft()
                _close_fds(fds)
        self._sent += sent
        if not self._fd_marks:
            self._send, self._sendmsg = sock.send, getattr(sock, "sendmsg", None)
        return sent

    def _sendmsg_marked(self, buffers: list[Any]) -> int:
        return self._send_marked(buffers[0])  # one segment at a time while descriptors wait

    def _close(self, reason: BaseException) -> None:
        super()._close(reason)
        marks, self._fd_marks = self._fd_marks, deque()
        for _, fds in marks:
            _close_fds(fds)

    # -- receiving descriptors -----------------------------------------------------------------

    def _on_readable(self) -> None:
        hook = getattr(self.protocol, "fds_received", None)
        if hook is None:
            # Plain recv(): the kernel closes any descriptors the peer sent along.
            super()._on_readable()
            return
        protocol = self.protocol
        get_buffer = getattr(protocol, "get_buffer", None)
        buffer: Any = None
        try:
            if get_buffer is None:
                data, ancillary, flags, _ = self.socket.recvmsg(self.read_size, _ANCILLARY_SPACE, _RECV_FLAGS)
                nbytes = len(data)
            else:
                buffer = get_buffer(-1)
                if not len(buffer):
                    raise RuntimeError("get_buffer() returned an empty buffer")
                nbytes, ancillary, flags, _ = self.socket.recvmsg_into([buffer], _ANCILLARY_SPACE, _RECV_FLAGS)
        except _WOULD_BLOCK:
            return
        except OSError as exc:
            self._close(_lost_from(exc))
            return
        except Exception as exc:  # get_buffer failed, or lent something we cannot write into
            log.exception("%r: cannot receive into the buffer from get_buffer(); closing", protocol)
            self._close(exc)
            return
        finally:
            del buffer
        fds = _fds_in(ancillary)
        if flags & socket.MSG_CTRUNC:  # once per connection at WARNING: a peer cannot flood the log
            log.log(logging.DEBUG if self._truncation_logged else logging.WARNING,
                    "%r: the peer sent more than %d descriptors in one message (or we are out of "
                    "descriptors); the kernel closed the rest", self, MAX_FDS_PER_MESSAGE)
            self._truncation_logged = True
        if not nbytes:
            _close_fds(fds)  # none come with an EOF; never leak one if they did
            self._on_eof()
            return
        if fds:
            try:
                hook(fds)
            except Exception as exc:
                log.exception("%r: fds_received failed; closing", protocol)
                _close_fds(fds)
                self._close(exc)
                return
            if fds:  # left in the list: not taken
                log.debug("%r: closing %d received descriptor(s) fds_received did not take", self, len(fds))
                _close_fds(fds)
            if self.disconnected:
                return
        try:
            if get_buffer is None:
                protocol.data_received(data)
            else:
                protocol.buffer_updated(nbytes)  # type: ignore[attr-defined]  # it lent: a BufferedStreamProtocol
        except Exception as exc:
            log.exception("%r: data_received failed; closing", protocol)
            self._close(exc)


# -- listening -------------------------------------------------------------------------------------


def _cannot_listen(path: str, reason: BaseException) -> CannotListenError:
    error = CannotListenError(path, 0, reason)
    text = getattr(reason, "strerror", None) or str(reason)
    error.args = (f"Couldn't listen on {_describe(path)}: {text}.",)
    error.__cause__ = reason
    return error


@implementer(IListeningPort)
class UnixPort(Port):
    """A listening Unix stream socket; see the module docstring for the lock and stale files.

    ``mode`` is applied to the socket file after ``bind()`` and before ``listen()``, so no
    connection is ever accepted under the umask's permissions. Abstract names have no file,
    no mode and no lock (the kernel frees the name with the socket).
    """

    transport_class = UnixConnection
    kind = "UNIX"
    stop_at_shutdown = True  # so that the socket and lock files go when the reactor stops

    def __init__(
        self,
        reactor: ReactorIO,
        path: str,
        factory: ProtocolFactory,
        mode: int = 0o660,
        backlog: int = 50,
        *,
        max_connections: int | None = None,
    ) -> None:
        super().__init__(reactor, 0, factory, backlog, "", max_connections=max_connections)
        self.path = _check_path(path)
        if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
            raise ValueError(f"mode must be permission bits from 0o000 to 0o777, got {mode!r}")
        self.mode = mode
        self.abstract = self.path.startswith("@")
        self._file = "" if self.abstract else os.path.abspath(self.path)  # cwd may change later
        self._lock_fd = -1
        self._bound: tuple[int, int] | None = None  # (st_dev, st_ino) of the socket file we made

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"

    @property
    def lock_path(self) -> str | None:
        """The lock file held while listening (None for an abstract name)."""
        return None if self.abstract else self._file + ".lock"

    def start_listening(self) -> None:
        try:
            super().start_listening()
        except BaseException:
            if not self.listening:  # e.g. the factory's do_start failed after the bind
                self._remove_files()
            raise

    def stop_listening(self) -> Deferred[None]:
        """Stop accepting, close the socket, remove the socket file and the lock file."""
        was_listening = self.listening
        d = super().stop_listening()
        if was_listening:
            self._remove_files()
        return d

    def _bind(self) -> socket.socket:
        try:
            address = _sockaddr(self.path)
        except ValueError as exc:
            raise _cannot_listen(self.path, exc) from None
        if not self.abstract:
            self._take_lock()
        try:
            if not self.abstract:
                self._clear_stale()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(address)
                if not self.abstract:
                    st = os.lstat(self._file)
                    self._bound = (st.st_dev, st.st_ino)
                    os.chmod(self._file, self.mode)
                sock.listen(self.backlog)
            except OSError as exc:
                sock.close()
                raise _cannot_listen(self.path, exc) from None
        except BaseException:
            self._remove_files()
            raise
        return sock

    def _take_lock(self) -> None:
        """Hold ``PATH.lock`` (flock) and write our pid in it, or raise CannotListenError."""
        import fcntl

        lock_path = self._file + ".lock"
        for _ in range(8):
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise _cannot_listen(self.path, OSError(
                    exc.errno, f"cannot open the lock file {lock_path}: {exc.strerror}")) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                who = f"another process (pid {pid})" if pid else "another process"
                raise _cannot_listen(self.path, OSError(
                    errno.EADDRINUSE, f"{who} listens there (it holds {lock_path}); stop it, or "
                    "choose another path")) from None
            except OSError as exc:
                os.close(fd)
                raise _cannot_listen(self.path, OSError(
                    exc.errno, f"cannot lock {lock_path}: {exc.strerror}")) from None
            # A listener stopping unlinks the file between our open() and flock(): then we hold
            # the lock of a file nobody else will open. Only the file at the path counts.
            try:
                here = os.stat(lock_path)
                mine = os.fstat(fd)
                current = (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)
            except FileNotFoundError:
                current = False
            if current:
                break
            os.close(fd)
        else:
            raise _cannot_listen(self.path, OSError(
                errno.EAGAIN, f"the lock file {lock_path} keeps being replaced; is a process restarting in a loop?"))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _clear_stale(self) -> None:
        """We hold the lock: a socket file at the path is stale unless a lock-less program
        answers on it. Anything that is not a socket is left alone."""
        try:
            st = os.lstat(self._file)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a symbolic link" if stat.S_ISLNK(st.st_mode)
                    else "a regular file" if stat.S_ISREG(st.st_mode) else "not a socket")
            raise _cannot_listen(self.path, OSError(
                errno.EEXIST, f"{self.path} exists and is {kind}; it is never deleted for you: move it "
                "away or choose another path"))
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.setblocking(False)
            err = probe.connect_ex(self.path)
        except OSError as exc:
            err = exc.errno or errno.EINVAL
        finally:
            probe.close()
        if err != errno.ECONNREFUSED:
            if err in (0, errno.EAGAIN, errno.EINPROGRESS):
                raise _cannot_listen(self.path, OSError(
                    errno.EADDRINUSE, f"a process that does not use the lock file {self._file}.lock "
                    "listens there; stop it, or choose another path"))
            raise _cannot_listen(self.path, OSError(
                err, f"cannot tell whether the existing socket file is in use: {os.strerror(err)}"))
        os.unlink(self._file)
        log.info("%s: replaced a stale socket file (nothing listened on it)", self.path)

    def _remove_files(self) -> None:
        """Remove the socket file (if it is still the one we bound) and release the lock."""
        if self._bound is not None:
            bound, self._bound = self._bound, None
            try:
                st = os.lstat(self._file)
                if (st.st_dev, st.st_ino) == bound:
                    os.unlink(self._file)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("%r: cannot remove the socket file: %s", self, exc)
        fd, self._lock_fd = self._lock_fd, -1
        if fd >= 0:
            lock_path = self._file + ".lock"
            try:
                os.unlink(lock_path)  # while still holding it: nobody else owns this file
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    log.warning("%r: cannot remove the lock file: %s", self, exc)
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).split()[0])
    except (OSError, ValueError, IndexError):
        return None


# -- connecting ------------------------------------------------------------------------------------


@implementer(IConnector)
class UnixConnector(StreamConnector):
    """One outgoing Unix connection for a :class:`~net.protocol.ClientFactory`, restartable.

    The factory hears of the outcome as from :class:`net.tcp.Connector` (the same
    :class:`~net.connector.StreamConnector`): ``start_connecting``, then
    ``client_connection_failed`` (a ConnectError: ConnectionRefusedError when nobody listens or
    the path does not exist, ConnectTimeoutError) or, once the connection ends,
    ``client_connection_lost``; the attempt starts from the next loop iteration. A listener
    whose queue is full makes ``connect()`` fail with EAGAIN at once; the attempt is then
    repeated (counted in :attr:`busy_retries`) until it succeeds or the timeout passes.
    """

    transport_class: type[UnixConnection] = UnixConnection
    transport: UnixConnection | None

    def __init__(self, reactor: ReactorIO, path: str, factory: ClientProtocolFactory,
                 timeout: float | None = 30) -> None:
        super().__init__(reactor, factory, timeout, "connect_unix", "unix:/path/to.sock")
        self.path = _check_path(path)
        self.busy_retries = 0
        """Attempts repeated because the listener's queue was full (EAGAIN), over all attempts."""
        self._retry_delay = _BUSY_RETRY_FIRST
        self._queue_full = False  # this attempt met a full listen queue

    def _where(self) -> str:
        return _describe(self.path)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} to {self.path} {self.state}>"

    def get_destination(self) -> Address:
        return UNIXAddress(self.path)

    # -- the attempt ---------------------------------------------------------------------------

    def _begin(self) -> None:
        self._retry_delay = _BUSY_RETRY_FIRST
        self._queue_full = False
        self._try()

    def _try(self) -> None:
        self._call = None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            err = sock.connect_ex(_sockaddr(self.path))
        except (OSError, ValueError) as exc:  # e.g. "AF_UNIX path too long"
            sock.close()
            error = ConnectError(f"Could not connect to {_describe(self.path)}: {exc}")
            error.errno = getattr(exc, "errno", None)
            error.__cause__ = exc
            self._fail(error)
            return
        if err == 0:
            self._socket_connected(sock)
        elif err in _CONNECT_PENDING:  # not Linux's way, but allowed
            self._sock = sock
            self.reactor.add_writer(sock.fileno(), self._on_connect_ready)
        elif err == errno.EAGAIN:
            sock.close()
            self.busy_retries += 1
            self._queue_full = True
            self._call = self.reactor.call_later(self._retry_delay, self._try)
            self._retry_delay = min(self._retry_delay * 2, _BUSY_RETRY_MAX)
        else:
            sock.close()
            self._fail(self._translate(OSError(err, os.strerror(err))))

    def _on_connect_ready(self) -> None:
        sock, self._sock = self._sock, None
        assert sock is not None
        self.reactor.remove_writer(sock.fileno())
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            sock.close()
            self._fail(self._translate(OSError(err, os.strerror(err))))
            return
        self._socket_connected(sock)

    def _socket_connected(self, sock: socket.socket) -> None:
        try:
            peer = unix_address(sock.getpeername())
        except OSError as exc:
            sock.close()
            self._fail(self._translate(exc))
            return
        self._connected(sock, peer)

    def _translate(self, exc: OSError) -> ConnectError:
        where = _describe(self.path)
        error: ConnectError
        if exc.errno == errno.ECONNREFUSED:
            error = ConnectionRefusedError(
                f"Connection refused by {where}: nobody listens there (a stale socket file?); is the server running?")
        elif exc.errno == errno.ENOENT:
            error = ConnectionRefusedError(
                f"No unix socket at {self.path}: the file does not exist; is the server running, and is the path right?")
        elif exc.errno in (errno.EACCES, errno.EPERM):
            error = ConnectError(
                f"Permission denied connecting to {where}: the socket file's mode or a directory on "
                f"its path does not let this user (uid {os.getuid()}) in; see the server's mode=")
        else:
            error = ConnectError(f"Could not connect to {where}: {exc.strerror or exc}")
        error.errno = exc.errno
        error.__cause__ = exc
        return error

    def _timeout_detail(self) -> str:
        return " (its listen queue stayed full: the server is not accepting)" if self._queue_full else ""


def listen_unix(
    reactor: ReactorIO,
    path: str,
    factory: ProtocolFactory,
    mode: int = 0o660,
    backlog: int = 50,
    *,
    max_connections: int | None = None,
    **caps: int | None,
) -> UnixPort:
    """Listen on the Unix socket ``path`` (``@name``: Linux abstract). Raises CannotListenError.

    ``mode`` is the socket file's permission bits (who may connect); ``max_connections`` caps
    the open connections as for TCP. ``max_connections_per_host`` does not apply: every peer is
    local (check :meth:`UnixConnection.get_peer_credentials` to tell them apart).
    """
    if caps:
        if "max_connections_per_host" in caps:
            raise TypeError("listen_unix(): max_connections_per_host does not apply to Unix sockets (every "
                            "peer is local, with no address to count by); use max_connections")
        raise TypeError(f"listen_unix() got unexpected keyword argument(s) {', '.join(sorted(caps))}")
    port = UnixPort(reactor, path, factory, mode, backlog, max_connections=max_connections)
    port.start_listening()
    return port


def connect_unix(reactor: ReactorIO, path: str, factory: ClientProtocolFactory,
                 timeout: float | None = 30) -> UnixConnector:
    """Connect to the Unix socket ``path`` for a ClientFactory; outcomes go to the factory's hooks."""
    connector = UnixConnector(reactor, path, factory, timeout)
    connector.connect()
    return connector


# -- endpoints -------------------------------------------------------------------------------------


@implementer(IStreamServerEndpoint)
class UNIXServerEndpoint:
    """Listen on a Unix socket; with ``tls_context`` (an ``OpenSSL.SSL.Context``) over TLS."""

    def __init__(
        self,
        reactor: Reactor,
        path: str,
        mode: int = 0o660,
        backlog: int = 50,
        *,
        max_connections: int | None = None,
        tls_context: SSL.Context | None = None,
        handshake_timeout: float | None = 30.0,
    ) -> None:
        self.reactor = reactor
        self.path = path
        self.mode = mode
        self.backlog = backlog
        self.max_connections = max_connections
        self.tls_context = tls_context
        self.handshake_timeout = handshake_timeout

    def __repr__(self) -> str:
        return f"<UNIXServerEndpoint {self.path}{' tls' if self.tls_context is not None else ''}>"

    def listen(self, factory: ProtocolFactory) -> Deferred[ListeningPort]:
        try:
            if self.tls_context is not None:
                from .tls import wrap_server_factory

                factory = wrap_server_factory(factory, self.tls_context, handshake_timeout=self.handshake_timeout,
                                              reactor=self.reactor)
            port = self.reactor.listen_unix(self.path, factory, self.mode, self.backlog,
                                            max_connections=self.max_connections)
        except Exception as exc:  # CannotListenError, mostly
            return fail(Failure(exc))
        return succeed(port)


@implementer(IStreamClientEndpoint)
class UNIXClientEndpoint:
    """Connect to a Unix socket; with ``tls_context``, over TLS to a server whose certificate
    names ``hostname`` (a Unix path names no host, so it is required then)."""

    def __init__(
        self,
        reactor: Reactor,
        path: str,
        timeout: float | None = 30,
        *,
        tls_context: SSL.Context | None = None,
        hostname: str | None = None,
        handshake_timeout: float | None = 30.0,
    ) -> None:
        if tls_context is not None and not hostname:
            raise ValueError("TLS over a unix socket needs hostname=NAME: the name the server's certificate must carry")
        self.reactor = reactor
        self.path = path
        self.timeout = timeout
        self.tls_context = tls_context
        self.hostname = hostname
        self.handshake_timeout = handshake_timeout

    def __repr__(self) -> str:
        return f"<UNIXClientEndpoint {self.path}{' tls' if self.tls_context is not None else ''}>"

    def connect(self, factory: ProtocolFactory) -> Deferred[Any]:
        wrapper = WrappingClientFactory(factory)
        target: ClientProtocolFactory = wrapper
        if self.tls_context is not None:
            from .tls import wrap_client_factory

            target = wrap_client_factory(wrapper, self.tls_context, self.hostname,
                                         handshake_timeout=self.handshake_timeout, reactor=self.reactor)
        try:
            wrapper.connector = self.reactor.connect_unix(self.path, target, timeout=self.timeout)
        except (TypeError, ValueError) as exc:
            return fail(Failure(exc))
        return wrapper.deferred


def _mode(value: str) -> int:
    text = value.strip().lower().removeprefix("0o")
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise ValueError(f"mode must be octal permission bits like 0600 or 660, got {value!r}")
    return mode


def _tls_server_context(cert: str, key: str, ca: str) -> SSL.Context | None:
    if not (cert or key or ca):
        return None
    if not (cert and key):
        raise ValueError("TLS over a unix socket needs both cert= and key= (ca= to require client certificates)")
    from .tls.endpoints import server_context_from_options

    return server_context_from_options(cert, key, ca)


def _unix_server(
    reactor: Reactor,
    path: str,
    *,
    mode: str = "660",
    backlog: str = "50",
    max_connections: str = "",
    cert: str = "",
    key: str = "",
    ca: str = "",
    handshake_timeout: str = "30",
) -> UNIXServerEndpoint:
    _check_path(path)
    return UNIXServerEndpoint(
        reactor, path, _mode(mode), _int("backlog", backlog, 0, 1 << 20),
        max_connections=_limit("max_connections", max_connections),
        tls_context=_tls_server_context(cert, key, ca), handshake_timeout=_timeout(handshake_timeout))


def _unix_client(
    reactor: Reactor,
    path: str,
    *,
    timeout: str = "30",
    ca: str = "",
    cert: str = "",
    key: str = "",
    hostname: str = "",
) -> UNIXClientEndpoint:
    _check_path(path)
    seconds = _timeout(timeout)
    context = None
    if ca or cert or key or hostname:
        if not hostname:
            raise ValueError("TLS over a unix socket needs hostname=NAME: the name the server's certificate must carry")
        from .tls.endpoints import client_context_from_options

        context = client_context_from_options(ca, cert, key)
    return UNIXClientEndpoint(reactor, path, seconds, tls_context=context, hostname=hostname or None,
                              handshake_timeout=seconds)


register_endpoint_type("unix", _unix_server, _unix_client)
