"""TLS for any stream transport: a protocol wrapper over pyOpenSSL memory BIOs.

Quick start (see ``docs/TLS.md``)::

    from net import tls
    paths = tls.make_dev_certs("certs")                    # or: python -m net.tls make-dev-certs certs
    tls.listen_tls(reactor, 8801, factory, tls.server_context(paths.server_cert, paths.server_key))
    tls.connect_tls(reactor, "localhost", 8801, client_factory, tls.client_context(ca=paths.ca))

or with endpoint strings (``net.endpoints``): ``"tls:8801:cert=server.pem:key=server.key"`` and
``"tls:localhost:8801:ca=ca.pem"``. Clients verify the server's certificate and host name unless
``client_context(insecure_skip_verify=True)`` says otherwise.

Modules: :mod:`.contexts` (errors, context builders, host-name check), :mod:`.transport` (the
wrapper protocol, factories, ``listen_tls``/``connect_tls``), :mod:`.endpoints` (``tls:``
strings), :mod:`.devcerts` (development certificates).
"""

from __future__ import annotations

from .contexts import CertificateError, TLSError, client_context, match_hostname, server_context
from .devcerts import DEFAULT_HOSTS, DevCerts, make_dev_certs
from .endpoints import TLSClientEndpoint, TLSServerEndpoint
from .transport import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    TLSClientFactory,
    TLSProtocol,
    TLSServerFactory,
    connect_tls,
    listen_tls,
    wrap_client_factory,
    wrap_server_factory,
)

__all__ = [
    "TLSError",
    "CertificateError",
    "server_context",
    "client_context",
    "match_hostname",
    "TLSProtocol",
    "TLSServerFactory",
    "TLSClientFactory",
    "wrap_server_factory",
    "wrap_client_factory",
    "listen_tls",
    "connect_tls",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "TLSServerEndpoint",
    "TLSClientEndpoint",
    "make_dev_certs",
    "DevCerts",
    "DEFAULT_HOSTS",
]
