"""A user database in a text file that holds SCRAM verifiers only, and its command-line tool.

File format (docs/CRED.md has the details): one user per line,

    username:SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>

with base64 values; blank lines and lines starting with ``#`` are ignored. Usernames are
stored SASLprepared and may not contain ``:`` or start with ``#``. The file never holds a
password or anything password-equivalent, so a leaked copy only allows offline guessing,
slowed by PBKDF2.

Writes go to a temporary file in the same directory that then replaces the original
(``os.replace``), so readers see the old file or the new one, never half of one; the file
is mode 0600; concurrent writers serialize on ``flock`` of ``<path>.lock``. A running
server picks up changes on its next lookup (it compares the file's stat).

Command line::

    python -m cred.userfile PATH add USER [--password-stdin] [--iterations N]
    python -m cred.userfile PATH passwd USER [--password-stdin] [--iterations N]
    python -m cred.userfile PATH remove USER
    python -m cred.userfile PATH list

Passwords are read with getpass (asked twice), or one line from stdin with
``--password-stdin`` for scripts; never from the command line, where ``ps`` shows them.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import getpass
import logging
import os
import secrets
import sys
from collections.abc import Iterator, Mapping, Sequence

from zope.interface import implementer

from cred.checkers import ICredentialsChecker, IScramVerifierSource, VerifierChecker
from cred.error import UserFileError
from cred.scram import DEFAULT_ITERATIONS, ScramVerifier, normalize_username

__all__ = ["FileUserDatabase", "format_user_file", "main", "parse_user_file"]

log = logging.getLogger(__name__)

_HEADER = "# pbroker users: username:SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey\n"


def _file_username(username: str) -> str:
    """SASLprep `username` and check it can be written to the file; ValueError if not."""
    prepared = normalize_username(username)
    if ":" in prepared or prepared.startswith("#"):
        raise ValueError("a username in a user file must not contain ':' or start with '#'")
    return prepared


def parse_user_file(text: str) -> dict[str, ScramVerifier]:
    """Parse a user file; raise UserFileError naming the first bad line."""
    users: dict[str, ScramVerifier] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip() or line.startswith("#"):
            continue
        username, sep, verifier = line.partition(":")
        try:
            if not sep:
                raise ValueError("expected 'username:SCRAM-SHA-256$...'")
            if _file_username(username) != username:
                raise ValueError("username is not in SASLprep form")
            if username in users:
                raise ValueError(f"duplicate user {username!r}")
            users[username] = ScramVerifier.parse(verifier)
        except ValueError as exc:
            raise UserFileError(f"line {lineno}: {exc}") from None
    return users


def format_user_file(users: Mapping[str, ScramVerifier]) -> str:
    """The text of a user file holding `users` (sorted, so diffs stay small)."""
    return _HEADER + "".join(f"{name}:{users[name].to_string()}\n" for name in sorted(users))


@implementer(ICredentialsChecker, IScramVerifierSource)
class FileUserDatabase(VerifierChecker):
    """Users in a file of SCRAM verifiers: a checker, and a ``lookup`` for `ScramServer`.

    A missing file is an empty database (``add`` creates it). A file that fails to parse
    raises UserFileError here; if it turns bad later, lookups keep the last good contents
    and log an error, so a botched edit does not lock everybody out.
    """

    def __init__(self, path: str | os.PathLike[str], *, iterations: int = DEFAULT_ITERATIONS) -> None:
        self.path = os.fspath(path)
        self.default_iterations = iterations
        self._stat: tuple[int, int, int] | None = None
        self._users: dict[str, ScramVerifier] = {}
        self._reload(strict=True)

    # -- reading --

    def _reload(self, strict: bool = False) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stat, self._users = None, {}
            return
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key == self._stat:
            return
        try:
            users = self._read()
        except (UserFileError, OSError, UnicodeDecodeError) as exc:
            if strict:
                raise
            log.error("user file %s not reloaded, keeping the previous users: %s", self.path, exc)
            return
        if st.st_mode & 0o077:
            log.warning("user file %s is accessible by other users; chmod 600 it", self.path)
        self._stat, self._users = key, users

    def _read(self) -> dict[str, ScramVerifier]:
        try:
            with open(self.path, encoding="utf-8") as f:
                return parse_user_file(f.read())
        except FileNotFoundError:
            return {}
        except UnicodeDecodeError as exc:
            raise UserFileError(f"{self.path}: not UTF-8: {exc.reason}") from None

    def get_scram_verifier(self, username: str) -> ScramVerifier | None:
        self._reload()
        return self._users.get(username)

    def users(self) -> list[str]:
        self._reload()
        return sorted(self._users)

    def __contains__(self, username: object) -> bool:
        return isinstance(username, str) and self.get_scram_verifier(username) is not None

    # -- writing --

    def add_user(self, username: str, password: str) -> None:
        """Add a user; ValueError if it exists."""
        name = _file_username(username)
        with self._modify() as users:
            if name in users:
                raise ValueError(f"user {name!r} already exists")
            users[name] = ScramVerifier.from_password(password, iterations=self.default_iterations)

    def set_password(self, username: str, password: str) -> None:
        """Give an existing user a new password (and a new salt); KeyError if none."""
        name = _file_username(username)
        with self._modify() as users:
            if name not in users:
                raise KeyError(name)
            users[name] = ScramVerifier.from_password(password, iterations=self.default_iterations)

    def remove_user(self, username: str) -> None:
        """Remove a user; KeyError if none."""
        name = _file_username(username)
        with self._modify() as users:
            del users[name]

    @contextlib.contextmanager
    def _modify(self) -> Iterator[dict[str, ScramVerifier]]:
        """Read the current file under the lock, let the caller edit, write it back."""
        directory = os.path.dirname(os.path.abspath(self.path))
        lock_fd = os.open(self.path + ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            users = self._read()
            yield users
            self._write(directory, format_user_file(users))
        finally:
            os.close(lock_fd)  # releases the flock
        self._reload(strict=True)

    def _write(self, directory: str, text: str) -> None:
        tmp = os.path.join(
            directory, f".{os.path.basename(self.path)}.{secrets.token_hex(6)}.tmp"
        )
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), 0o600)  # exactly 0600, whatever the umask
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)


# --- command line ----------------------------------------------------------------------------


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise ValueError("the passwords do not match")
    if not password:
        raise ValueError("empty password")
    return password


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m cred.userfile``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m cred.userfile",
        description="Manage a pbroker user file (SCRAM-SHA-256 verifiers only).",
    )
    parser.add_argument("path", help="the user file (created by 'add' if missing)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in (("add", "add a user"), ("passwd", "change a user's password")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("user")
        command.add_argument(
            "--password-stdin", action="store_true", help="read the password as one line from stdin"
        )
        command.add_argument(
            "--iterations", type=int, default=DEFAULT_ITERATIONS,
            help=f"PBKDF2 iterations (default {DEFAULT_ITERATIONS})",
        )
    commands.add_parser("remove", help="remove a user").add_argument("user")
    commands.add_parser("list", help="list the users")
    args = parser.parse_args(argv)

    try:
        db = FileUserDatabase(args.path, iterations=getattr(args, "iterations", DEFAULT_ITERATIONS))
        if args.command == "list":
            for user in db.users():
                print(user)
        elif args.command == "remove":
            db.remove_user(args.user)
        else:
            exists = db.get_scram_verifier(_file_username(args.user)) is not None
            if args.command == "passwd" and not exists:
                raise KeyError(args.user)
            if args.command == "add" and exists:
                raise ValueError(f"user {args.user!r} already exists")
            password = _read_password(args.password_stdin)
            if args.command == "add":
                db.add_user(args.user, password)
            else:
                db.set_password(args.user, password)
    except KeyError as exc:
        print(f"{parser.prog}: error: no such user: {exc.args[0]!r}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
