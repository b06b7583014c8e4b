"""Reachability probes for backing services, used by test settings and the test suite."""

import socket
from urllib.parse import urlsplit

DEFAULT_PORTS = {"postgres": 5432, "postgresql": 5432, "pgsql": 5432, "redis": 6379, "rediss": 6379}


def tcp_reachable(url: str, *, timeout: float = 0.5) -> bool:
    """True when the host and port named in a service URL accept a TCP connection."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return True
    host = parts.hostname or "127.0.0.1"
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    if not port:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
