"""Getting a client's password from the person (or script) running it, never from its arguments.

A password on the command line is visible to every user of the machine in ``ps``, so a pbroker
client program takes it from one of three places, in this order:

1. the environment variable :data:`PASSWORD_VARIABLE` (``PBROKER_PASSWORD``), for scripts and
   service managers that can hand a secret to one process;
2. the terminal, asked with :func:`getpass.getpass` (not echoed), when stdin is a terminal;
3. otherwise one line of stdin, for a pipe (``printf '%s\\n' "$PW" | client alice``).

The examples' Python clients (examples/authservice/client.py, ``python -m examples.chat.client``)
use this function; the Java example client (examples/java/ChatClient.java) follows 1 and 2.
"""

from __future__ import annotations

import getpass
import os
import sys

__all__ = ["PASSWORD_VARIABLE", "read_password"]

#: The environment variable a pbroker client reads its password from, where it is set.
PASSWORD_VARIABLE = "PBROKER_PASSWORD"


def read_password(user: str, *, variable: str = PASSWORD_VARIABLE) -> str:
    """``user``'s password: from the environment ``variable`` if it is set (even to ""), else
    asked on the terminal (prompt ``password for USER: ``), else the first line of stdin without
    its line ending ("" at end of input: the login then fails, as a wrong password does)."""
    password = os.environ.get(variable)
    if password is not None:
        return password
    if sys.stdin.isatty():
        return getpass.getpass(f"password for {user}: ")
    return sys.stdin.readline().rstrip("\n")
