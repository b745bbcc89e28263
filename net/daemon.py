"""Daemonizing: the classic double fork, with the starting process waiting for the daemon's word.

``daemonize()`` returns only in the daemon. The process that called it waits, on a pipe, until
the daemon says it is ready (it printed what the daemon reported, e.g. the addresses it listens
on, and exits 0) or that it failed (it prints why and exits with the daemon's exit code), or
until the daemon dies without a word (exit 1). So ``pbroker serve --daemon`` returns once the
server serves, with an exit code that says whether it does -- what an init script or a test
needs, with no polling of pidfiles or logs.

The steps, each for its classic reason:

1. ``fork``: the child is not a process group leader, so it may call ``setsid``;
2. ``setsid``: a new session with no controlling terminal (no SIGHUP from a closing terminal);
3. ``fork`` again: the daemon is not a session leader, so opening a tty never makes it its
   controlling terminal; the intermediate child exits at once and the caller reaps it, so it
   leaves no zombie;
4. in the daemon: ``umask``, ``chdir("/")`` (not to keep a mount busy), stdin/stdout/stderr to
   /dev/null. The pidfile is the daemon's to write (after the forks, so it holds the daemon's pid).

Call it before any thread or reactor exists: only the forking thread survives a fork.
"""

from __future__ import annotations

import os
import sys

__all__ = ["daemonize", "Readiness", "notify"]


class Readiness:
    """The daemon's end of the pipe to the starting process: say :meth:`ready` or :meth:`failed` once."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def ready(self, lines: list[str] = []) -> None:  # noqa: B006 - never mutated
        """Tell the starting process we serve; it prints ``lines`` to its stdout and exits 0."""
        self._send("ready\n" + "".join(line + "\n" for line in lines))

    def failed(self, code: int, message: str) -> None:
        """Tell the starting process we could not start; it prints ``message`` and exits ``code``."""
        self._send(f"failed {int(code)}\n{message}\n")

    def abandon(self) -> None:
        """Close our end without a word (a forked worker: the supervisor speaks for it)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    @property
    def pending(self) -> bool:
        """Nothing has been said yet."""
        return self._fd is not None

    def _send(self, text: str) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            data = text.encode("utf-8", "replace")
            while data:
                data = data[os.write(fd, data):]
        except OSError:  # the starting process is gone: nobody to tell
            pass
        finally:
            os.close(fd)


def daemonize(*, umask: int | None = None, workdir: str = "/") -> Readiness:
    """Become a daemon (module doc); return, in the daemon only, the pipe to report readiness on."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    first = os.fork()
    if first > 0:  # the starting process
        os.close(write_end)
        os.waitpid(first, 0)  # the intermediate child exits at once
        os._exit(_wait_for_word(read_end))
    os.close(read_end)
    os.setsid()
    if os.fork() > 0:  # the intermediate child: its work is done
        os._exit(0)
    if umask is not None:
        os.umask(umask)
    os.chdir(workdir)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
    return Readiness(write_end)


def _wait_for_word(fd: int) -> int:
    """In the starting process: relay what the daemon says, return the exit code to leave with."""
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    text = b"".join(chunks).decode("utf-8", "replace")
    head, _, rest = text.partition("\n")
    if head == "ready":
        sys.stdout.write(rest)
        sys.stdout.flush()
        return 0
    if head.startswith("failed "):
        sys.stderr.write(rest)
        sys.stderr.flush()
        code = head.split()[1]
        return int(code) if code.isdigit() else 1
    sys.stderr.write("the daemon exited before it was ready (see its log file for why)\n")
    sys.stderr.flush()
    return 1


def notify(state: str) -> bool:
    """``sd_notify(state)``: tell systemd (``Type=notify``) e.g. ``"READY=1"`` or ``"STOPPING=1"``.

    A datagram to the unix socket named by ``NOTIFY_SOCKET`` (``@name``: the abstract
    namespace); False, doing nothing, when the variable is unset (not under systemd). A failure
    to send is logged, never raised: the service manager's bookkeeping must not stop a server.
    """
    import logging
    import socket

    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode("utf-8"), address)
    except OSError as exc:
        logging.getLogger(__name__).warning("could not notify the service manager (NOTIFY_SOCKET=%s) of %r: %s",
                                            os.environ.get("NOTIFY_SOCKET"), state, exc)
        return False
    return True
