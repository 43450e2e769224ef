"""Scale-out of the live app: several `spml serve` processes share Socket.IO rooms and broadcasts
through a Redis message queue (Flask-SocketIO's ``message_queue``); see docs/scale-out.md."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from spml_core.errors import SpmlError

SCHEMES = ("redis", "rediss")
DEFAULT_CHANNEL = "spml"


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def check_message_queue(url: str, timeout: float = 5.0) -> None:
    """Fail at start-up, naming the URL, when the Redis server cannot be reached.

    python-socketio's Redis manager would otherwise retry in the background, and broadcasts
    to the other processes would be lost without a word.
    """
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise SpmlError(f"message queue {redact(url)}: cannot reach Redis ({exc})") from None
