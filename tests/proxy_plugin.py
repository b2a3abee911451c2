"""A proxy.py plugin for the tests: one log line for every request the proxy forwards.

proxy.py's own access line is written once per client connection (the last request on it), so
with keep-alive it undercounts; this line comes for each request, keep-alive or not, and says
whether the proxy credential reached the proxy.
"""

from __future__ import annotations

import logging

from proxy.http.parser import HttpParser
from proxy.http.proxy import HttpProxyBasePlugin

# tests/proxy_server.py reads these lines.
FORWARDED = "FORWARDED %s %s:%s%s credential=%s"
log = logging.getLogger(__name__)


class LogEachRequest(HttpProxyBasePlugin):
    """Logs FORWARDED <method> <host:port/path> credential=<yes|no> before forwarding."""

    def handle_client_request(self, request: HttpParser) -> HttpParser | None:
        log.info(
            FORWARDED,
            (request.method or b"").decode(),
            (request.host or b"").decode(),
            request.port,
            (request.path or b"").decode(),
            "yes" if request.has_header(b"proxy-authorization") else "no",
        )
        return request
