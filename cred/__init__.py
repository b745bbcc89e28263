"""Authentication and authorization: credentials, checkers, realm, portal.

Modules: `cred.error`, `cred.credentials`, `cred.saslprep`, `cred.scram` (sans-IO
SCRAM-SHA-256), `cred.checkers`, `cred.userfile` (file user database and its CLI),
`cred.sqlstore` (the same verifiers in an SQL table, on a DB-API pool such as
``net.adbapi.ConnectionPool``), `cred.throttle`, `cred.portal`, `cred.prompt` (a client's
password from the environment, the terminal or stdin). See docs/CRED.md and
docs/DATABASE.md.

Nothing is re-exported here: ``python -m cred.userfile`` must not find its module already
imported by the package.
"""

__all__ = ["__version__"]

# The version is net's (net/_version.py), but cred may import only net.defer of net: read it from
# the installed distribution's metadata, on first use, so importing cred reads no metadata.
__version__: str


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("pbroker")
        except PackageNotFoundError:  # run from a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
