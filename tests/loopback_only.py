"""`python tests/loopback_only.py ARGS`: `python -m harvester ARGS` that cannot leave this machine.

Every TCP connect and every name lookup goes through a guard first: anything but loopback ends
the process at once with exit 99 and a GUARD line on stderr, before a packet is sent. The hostile
server suite runs the CLI this way, so a hop harvester fails to refuse fails the test instead of
reaching out (to 169.254.169.254, say).

On the way out it writes `PEAK_RSS_KIB <n>` on stderr: VmHWM, its own peak resident set since
exec. (wait4's ru_maxrss would not do: Linux folds in the RSS the process had before exec, which
for a child of a long pytest run is pytest's.)
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from typing import Any

GUARD_EXIT = 99
_LOCAL_NAMES = {"localhost", "localhost.localdomain"}


def _local(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(what: str, where: Any) -> None:
    sys.stderr.write(f"GUARD: {what} {where!r} refused: not loopback\n")
    sys.stderr.flush()
    os._exit(GUARD_EXIT)


def _install() -> None:
    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex
    getaddrinfo = socket.getaddrinfo

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _refuse("connect to", address)
        connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _refuse("connect to", address)
        return connect_ex(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _local(host):
            _refuse("name lookup of", host)
        return getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = guarded_getaddrinfo


def _report_peak_rss() -> None:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                sys.stderr.write(f"PEAK_RSS_KIB {line.split()[1]}\n")


if __name__ == "__main__":
    _install()
    from harvester.cli import main

    try:
        code = main(sys.argv[1:])
    finally:
        _report_peak_rss()
    sys.exit(code)
