"""The production WSGI server: waitress, sized for many keep-alive screens.

:func:`create_server` builds a waitress server for the app with

- the connection settings of the app config (``THREADS``, ``CONNECTION_LIMIT``,
  ``BACKLOG``, ``CHANNEL_TIMEOUT``; ``CIM_*`` in the environment). waitress's own
  default of 100 connections leaves a 101st keep-alive client unanswered until
  another one closes; the default here is 1000. Idle keep-alive connections cost a
  socket, not a thread: threads only run requests;
- ``poll()`` instead of ``select()`` where available (select cannot watch file
  descriptors above 1024), and the process's open-file limit raised to fit;
- the security headers (:func:`server.security.security_headers`) on waitress's own
  responses too: malformed requests (400), oversized headers (431) or bodies (413),
  and the 500 it sends when the app fails before answering. The app adds them to
  everything else;
- keep-alive kept after bodiless responses (304, 204): waitress closes the connection
  after them because they carry no Content-Length, although HTTP/1.1 delimits them
  by their headers; revalidating tiles would otherwise reconnect every time;
- connections handed over (the live stream, :mod:`server.sse`): the WSGI environ
  offers ``cim.sse.detach``; a view that calls it with a :class:`server.sse.Handoff`
  gets its response's status and headers written, with the handoff's first bytes, by
  the fan-out on a duplicate of the socket, and the worker thread is free at once.
"""

from __future__ import annotations

import logging
import select
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.server import create_server as _waitress_server
from waitress.task import ErrorTask, WSGITask

from server.security import security_headers
from server.sse import DETACH_KEY, Handoff, detach_socket, response_header

logger = logging.getLogger(__name__)

__all__ = ["adjustments", "create_server", "raise_open_file_limit"]

#: file descriptors kept free beyond the connections (files being sent, SQLite, logs)
_SPARE_FDS = 256


def adjustments(config: dict[str, Any]) -> dict[str, Any]:
    """waitress settings from the app config.

    Parameters
    ----------
    config : mapping
        The app config (see :data:`server.config.DEFAULTS`).

    Returns
    -------
    dict
        Keyword arguments for waitress.
    """
    return {
        "threads": int(config["THREADS"]),
        "connection_limit": int(config["CONNECTION_LIMIT"]),
        "backlog": int(config["BACKLOG"]),
        "channel_timeout": int(config["CHANNEL_TIMEOUT"]),
        "asyncore_use_poll": hasattr(select, "poll"),
        "ident": "cim",
    }


def raise_open_file_limit(connections: int) -> int:
    """Raise the soft open-file limit so that ``connections`` sockets fit.

    Returns
    -------
    int
        The soft limit now in force (unchanged where the platform has none).
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return connections + _SPARE_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = connections + _SPARE_FDS
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError) as exc:  # pragma: no cover - depends on the OS
            logger.warning("cannot raise the open-file limit to %d: %s", want, exc)
    if soft != resource.RLIM_INFINITY and soft < want:
        logger.warning(
            "open-file limit %d is below %d connections + %d: raise it (ulimit -n)",
            soft,
            connections,
            _SPARE_FDS,
        )
    return int(soft)


def _channel_class(csp: bool) -> type[HTTPChannel]:
    """An HTTPChannel whose own responses carry the security headers."""
    headers = security_headers(csp)

    class SecureErrorTask(ErrorTask):
        def execute(self) -> None:
            self.response_headers.extend(headers)
            super().execute()

    class KeepAliveTask(WSGITask):
        _bodiless = False
        _handoff: Handoff | None = None

        def get_environment(self) -> dict[str, Any]:
            env = super().get_environment()
            env[DETACH_KEY] = self._detach
            return env

        def _detach(self, handoff: Handoff) -> None:
            self._handoff = handoff

        def write(self, data: bytes) -> None:
            if self._handoff is None:
                super().write(data)
            # else: the fan-out writes this response (see execute)

        def execute(self) -> None:
            try:
                super().execute()
            finally:
                if self._handoff is not None:
                    self._hand_over(self._handoff)

        def _hand_over(self, handoff: Handoff) -> None:
            # waitress closes its descriptor after this request; the duplicate keeps
            # the connection open for the fan-out
            self.close_on_finish = True
            sock = detach_socket(self.channel)
            if sock is None or not self.complete:
                if sock is not None:
                    sock.close()
                handoff.done()
                return
            header = response_header(self.status, self.response_headers)
            handoff.fanout.add(sock, header, handoff)

        def build_response_header(self) -> bytes:
            self._bodiless = (
                not self.has_body
                and self.version == "1.1"
                and not self.close_on_finish
                and self.request.headers.get("CONNECTION", "").lower() != "close"
            )
            try:
                return super().build_response_header()
            finally:
                self._bodiless = False

        def set_close_on_finish(self) -> None:
            if self._bodiless:  # a 304 or 204 ends with its headers: keep the connection
                return
            super().set_close_on_finish()

    class SecureChannel(HTTPChannel):
        task_class = KeepAliveTask
        error_task_class = SecureErrorTask

    return SecureChannel


def create_server(app: Any, host: str = "127.0.0.1", port: int = 8000, **overrides: Any) -> Any:
    """A waitress server for ``app`` (not started: call ``.run()``).

    Parameters
    ----------
    app : Flask
        From :func:`server.create_app`; its config gives the connection settings.
    host, port : str, int
        Where to listen (port 0: a free port, see ``.effective_port``).
    **overrides
        Further waitress settings, winning over the config.

    Returns
    -------
    waitress server
        With ``.run()``, ``.close()``, ``.effective_host`` and ``.effective_port``.
    """
    kw = adjustments(app.config)
    kw.update(overrides)
    raise_open_file_limit(int(kw["connection_limit"]))
    socket_map: dict[int, Any] = {}
    srv = _waitress_server(app, map=socket_map, host=host, port=port, **kw)
    channel = _channel_class(bool(app.config.get("CSP", True)))
    # one listener per resolved address ("localhost" may give IPv4 and IPv6)
    for listener in {id(s): s for s in [*socket_map.values(), srv]}.values():
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = channel
    return srv
