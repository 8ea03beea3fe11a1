"""The operator surface: an HTTP API, a WebSocket push, Prometheus metrics and a dashboard page,
served by aiohttp inside the daemon (:class:`~polybot.api.server.ApiServer`)."""

from .server import ApiServer, resolve_token

__all__ = ["ApiServer", "resolve_token"]
