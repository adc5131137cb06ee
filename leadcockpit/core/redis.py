"""One Redis client per process for the few hot paths that talk to Redis directly (the ingest rate window,
the rescore flag). A client per call would open a connection pool, and so a TCP connection, per request."""

import functools

from django.conf import settings


def client():
    """The process's Redis client for REDIS_URL (thread-safe, pooled), or None without one."""
    return _client_for(settings.REDIS_URL) if settings.REDIS_URL else None


@functools.cache
def _client_for(url):
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
