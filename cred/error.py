"""Errors of the cred package, named by cause.

::

    LoginFailed                  a login did not produce an avatar (catch this one)
    ├── UnauthorizedLogin        the credentials were not accepted (or the login is throttled)
    ├── LoginDenied              the credentials were fine, but the realm refused the avatar
    ├── UnhandledCredentials     server misconfiguration: no checker for these credentials
    └── ScramError               a SCRAM message was malformed, out of order, or the server's
                                 signature did not verify
    UserFileError (ValueError)   a user file line could not be parsed

`UnauthorizedLogin` always carries the same message: telling a client *why* a login failed
(unknown user, wrong password, locked out) helps only an attacker.
"""

from __future__ import annotations

__all__ = [
    "LoginDenied",
    "LoginFailed",
    "ScramError",
    "UnauthorizedLogin",
    "UnhandledCredentials",
    "UserFileError",
]


class LoginFailed(Exception):
    """A login did not produce an avatar. Base class: catch this to handle every failure."""


class UnauthorizedLogin(LoginFailed):
    """The credentials were not accepted.

    Raised for an unknown user, a wrong password or proof, an untrusted certificate and a
    throttled login alike; the message is fixed so that it never tells which.
    """

    MESSAGE = "login failed: invalid credentials"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)

    def __reduce__(self) -> tuple[type[UnauthorizedLogin], tuple[()]]:
        return (type(self), ())


class LoginDenied(LoginFailed):
    """The credentials were valid but the realm refused to give out an avatar."""


class UnhandledCredentials(LoginFailed):
    """No checker is registered for the kind of credentials offered: a server configuration
    error, not the client's fault."""


class ScramError(LoginFailed):
    """A SCRAM exchange could not go on: a message was malformed, a call came out of order,
    the peer asked for something unsupported, or the server's signature was wrong."""


class UserFileError(ValueError):
    """A user file (see `cred.userfile`) could not be parsed; the message names the line."""
