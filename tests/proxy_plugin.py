"""A proxy.py plugin for the tests: one log line for every request the proxy forwards.

proxy.py's own access line is written once per client connection (the last request on it), so
with keep-alive it undercounts; this line comes for each request, keep-alive or not, and says
whether the proxy credential reached the proxy, and from which address the client connected.
And it keeps the proxy on loopback, as tests/loopback_only.py keeps harvester: a request for any
other host is refused (403) and logged as REFUSED, so that a hop harvester should have refused
cannot leave this machine through it.
"""

from __future__ import annotations

import ipaddress
import logging

from proxy.http.exception import HttpRequestRejected
from proxy.http.parser import HttpParser
from proxy.http.proxy import HttpProxyBasePlugin

# tests/proxy_server.py reads these lines.
FORWARDED = "FORWARDED %s %s:%s%s credential=%s client=%s"
log = logging.getLogger(__name__)


REFUSED = "REFUSED %s: not loopback"


class LogEachRequest(HttpProxyBasePlugin):
    """Logs FORWARDED <method> <host:port/path> credential=<yes|no> client=<address the request
    came from> before forwarding; refuses any host but loopback."""

    def before_upstream_connection(self, request: HttpParser) -> HttpParser | None:
        host = (request.host or b"").decode()
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = host == "localhost"
        if not local:
            log.info(REFUSED, host)
            raise HttpRequestRejected(status_code=403, reason=b"Forbidden")
        return request

    def handle_client_request(self, request: HttpParser) -> HttpParser | None:
        log.info(
            FORWARDED,
            (request.method or b"").decode(),
            (request.host or b"").decode(),
            request.port,
            (request.path or b"").decode(),
            "yes" if request.has_header(b"proxy-authorization") else "no",
            self.client.addr[0] if self.client.addr else "unix",
        )
        return request
