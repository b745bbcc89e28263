"""A pidfile that tells a live server from a stale file: the file is locked while its server lives.

A pidfile's number alone cannot say whether its server is still there: after a crash or a
reboot the number may belong to some other process by now. So the server holds an exclusive
``flock`` on the file for as long as it runs; the kernel drops the lock when the process dies,
however it dies. Then:

* the lock is held by another process: a live server -- refused, naming its pid
  (:class:`PidfileInUse`);
* the lock is free: the file is stale (or new) -- whatever pid it names is not a server holding
  it, so it is replaced with ours (a warning names the stale pid).

The lock is on the open file, so it is shared by the forks of the process that took it (the
workers of a supervisor), and released on :meth:`Pidfile.release` or exit. ``release`` removes
the file only if it still holds our pid (a successor may have replaced it).
"""

from __future__ import annotations

import fcntl
import os

__all__ = ["Pidfile", "PidfileInUse", "read_pid"]


class PidfileInUse(Exception):
    """Another live process holds the pidfile: another instance runs (stop it, or use another path)."""

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        who = f"process {pid}" if pid is not None else "another process (its pid is not written yet)"
        super().__init__(f"pidfile {path} is held by {who}, which is running: another instance is "
                         f"serving; stop it first (kill {pid if pid is not None else '<pid>'}) or "
                         f"choose another --pidfile")


def read_pid(path: str) -> int | None:
    """The pid written in ``path``, or None if it is missing, empty or not a number."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read(64).strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


class Pidfile:
    """``acquire()`` to claim ``path`` (raises :class:`PidfileInUse`), ``release()`` at exit."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._fd: int | None = None
        self._pid: int | None = None
        #: The stale pid the file named when :meth:`acquire` replaced it (for the caller to log,
        #: once its logging is set up: see :meth:`describe_replaced`).
        self.replaced: int | None = None

    def describe_replaced(self) -> str | None:
        """A warning to log if :meth:`acquire` replaced a stale file, else None."""
        if self.replaced is None:
            return None
        return (f"pidfile {self.path} named process {self.replaced}, which no longer holds it (it exited, "
                f"or the number was reused): replaced it")

    def __repr__(self) -> str:
        return f"<Pidfile {self.path} {'held' if self._fd is not None else 'not held'}>"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, pid: int | None = None) -> None:
        """Lock the file and write ``pid`` (ours by default) in it; replace a stale one."""
        if self._fd is not None:
            raise RuntimeError(f"{self!r} is already held")
        pid = os.getpid() if pid is None else pid
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise PidfileInUse(self.path, read_pid(self.path)) from None
            stale = read_pid(self.path)
            if stale is not None and stale != pid:
                self.replaced = stale
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{pid}\n".encode("ascii"), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._pid = pid

    def release(self) -> None:
        """Remove the file if it still names us, and drop the lock. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if read_pid(self.path) == self._pid:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
        finally:
            os.close(fd)  # the lock goes with the last descriptor of the open file
