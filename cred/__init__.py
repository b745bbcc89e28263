"""Authentication and authorization: credentials, checkers, realm, portal.

Modules: `cred.error`, `cred.credentials`, `cred.saslprep`, `cred.scram` (sans-IO
SCRAM-SHA-256), `cred.checkers`, `cred.userfile` (file user database and its CLI),
`cred.throttle`, `cred.portal`. See docs/CRED.md.

Nothing is re-exported here: ``python -m cred.userfile`` must not find its module already
imported by the package.
"""

__all__: list[str] = []
