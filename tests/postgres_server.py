"""A real PostgreSQL server for the tests that need one: :class:`PostgresServer` and the
module-scoped ``postgres`` fixture (import it into a test module to use it).

The server runs from Debian's ``postgresql`` package binaries (/usr/lib/postgresql/*/bin), in
a fresh data directory, listening on a Unix socket only (``listen_addresses=''``). As root it
runs as the ``postgres`` user (PostgreSQL refuses to run as root). The fixture skips, saying
why, when the binaries, that user or psycopg 3 (the driver the tests talk to it with) are
missing; a server that is there but fails to start is an error, not a skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["PSYCOPG_MISSING", "PostgresServer", "postgres"]

READY_LINE = "database system is ready to accept connections"
PSYCOPG_MISSING = "psycopg 3 is not installed (pip install 'psycopg[binary]')"


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """A postmaster in ``directory`` (data in ``directory/data``, its socket in ``directory``)."""

    def __init__(self, bindir: Path, directory: Path, user: str | None) -> None:
        self.directory = directory
        self.conninfo = f"host={directory} port=5432 dbname=postgres user=pbroker"
        as_user: dict[str, Any] = {}
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
            as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        subprocess.run(
            [bindir / "initdb", "-D", directory / "data", "-U", "pbroker", "-A", "trust",
             "--encoding=UTF8", "--no-sync", "--no-instructions"],
            check=True, capture_output=True, cwd=directory, **as_user,
        )
        self.process = subprocess.Popen(
            [bindir / "postgres", "-D", directory / "data", "-k", str(directory),
             "-c", "listen_addresses=", "-c", "fsync=off", "-c", "max_connections=40",
             "-c", "unix_socket_permissions=0700"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=directory, **as_user,
        )
        assert self.process.stderr is not None
        seen = []
        for line in self.process.stderr:  # the server says when it is ready: no polling
            seen.append(line)
            if READY_LINE in line:
                break
        else:
            self.process.wait()
            raise RuntimeError("PostgreSQL did not start:\n" + "".join(seen))
        # Keep reading its log, or the pipe fills and the server blocks writing to it.
        self._drain = threading.Thread(target=self._discard_log, daemon=True)
        self._drain.start()

    def _discard_log(self) -> None:
        assert self.process.stderr is not None
        for _ in self.process.stderr:
            pass

    def stop(self) -> None:
        self.process.send_signal(2)  # SIGINT: fast shutdown (ends the backends, then exits)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._drain.join()
        assert self.process.stderr is not None
        self.process.stderr.close()


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    pytest.importorskip("psycopg", reason=PSYCOPG_MISSING)
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                    "(Debian: apt-get install postgresql, or scripts/system-deps.sh)")
    user: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        user = "postgres"
        # Under /tmp: pytest's base temp directory is 0700 root's, which postgres cannot enter.
        directory = Path(tempfile.mkdtemp(prefix="pbroker-pg-"))
    else:
        directory = tmp_path_factory.mktemp("pg")
    try:
        server = PostgresServer(bindir, directory, user)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
