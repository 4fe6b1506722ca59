"""The live stream's fan-out: every Server-Sent Events connection written by a few
threads, not one thread per screen.

Under ``cim serve`` (waitress, :mod:`server.wsgi`) a ``GET /api/live/stream`` runs in a
worker thread only as long as a plain request does: the view checks the token and the
filters and builds the first chunks (``retry``, the snapshot), then *hands the
connection over* (:class:`Handoff`). The task writes nothing through waitress; it
duplicates the socket's file descriptor, gives the duplicate to a :class:`FanOut`
shard and lets waitress close its own descriptor (a ``close`` of one duplicate sends
no FIN, so the connection stays open on the other). The worker thread is free at once.

Each shard is one thread with a selector over its sockets (non-blocking):

- the hub wakes it (:meth:`layers.live.LiveHub.add_wakeup`) as soon as deltas were
  ringed (from the dispatcher's thread: no notifier hand-off in between); at most once
  per the hub's ``notify_interval`` (deltas closer together wait for the next pass) it
  brings every client's cursor up to the ring's head: unfiltered clients at
  the same cursor share one encoded event, so 500 screens cost one ``join`` and 500
  ``send`` calls;
- what a socket does not take at once waits in the client's buffer, and the shard
  watches the socket for writability. A client whose buffer holds more than
  ``max_buffer`` bytes takes no new deltas: its cursor stays where it was, in the
  hub's ring (the bounded per-client queue costs nothing until it is read). When it
  drains it continues from its cursor, or, when it fell out of the ring meanwhile,
  gets a fresh snapshot marked ``resync`` (:meth:`LiveHub.next_event`) — never a
  silent gap;
- a stream silent for ``heartbeat`` seconds gets a comment with its current id;
- a client that closes (EOF or an error on read or write) is dropped and its slot
  freed.

Event ids, resume with ``Last-Event-ID`` and resync are the hub's, as for the
thread-per-stream path that other WSGI servers (and Flask's test client) still use.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import logging
import os
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from layers.live import LiveHub, StreamFilter

logger = logging.getLogger(__name__)

__all__ = ["FanOut", "Handoff"]

#: the WSGI environ key under which a server that can hand connections over offers it
DETACH_KEY = "cim.sse.detach"


@dataclass
class Handoff:
    """A stream ready to leave its worker thread: where it continues in the hub, its
    first bytes, and what to call when it ends (exactly once)."""

    fanout: FanOut
    filt: StreamFilter
    epoch: str
    cursor: int
    first: bytes
    release: Callable[[], None]
    _released: bool = field(default=False, repr=False)

    def done(self) -> None:
        """Free the stream's slot (idempotent)."""
        if not self._released:
            self._released = True
            self.release()


class _Client:
    __slots__ = ("cursor", "epoch", "filt", "handoff", "last_write", "out", "sock", "writing")

    def __init__(self, sock: socket.socket, h: Handoff) -> None:
        self.sock = sock
        self.filt = h.filt
        self.epoch = h.epoch
        self.cursor = h.cursor
        self.out = bytearray(h.first)
        self.last_write = time.monotonic()
        self.handoff = h
        self.writing = False


class FanOut:
    """Writes the live stream to every handed-over connection.

    Parameters
    ----------
    hub : LiveHub
        Where the deltas come from.
    threads : int
        Shards (each one thread and one selector); the clients are spread over them.
    heartbeat : float
        Seconds of silence before a keepalive comment with the current id.
    max_buffer : int
        Bytes a client may have waiting before it stops taking deltas (then it
        continues from its cursor in the ring, or resyncs, once it has drained).
    """

    def __init__(
        self,
        hub: LiveHub,
        threads: int = 2,
        heartbeat: float = 15.0,
        max_buffer: int = 1 << 20,
    ) -> None:
        self.hub = hub
        self.heartbeat = heartbeat
        self.max_buffer = max_buffer
        self._shards = [_Shard(self, k) for k in range(max(1, threads))]
        self._next = itertools.cycle(self._shards)
        self._lock = threading.Lock()
        self._closed = False
        for shard in self._shards:
            hub.add_wakeup(shard.wake)
            shard.start()

    @property
    def clients(self) -> int:
        """Streams open now."""
        return sum(len(s.clients) + s.inbox_len for s in self._shards)

    def stats(self) -> dict[str, Any]:
        """Counters: open streams, passes over the clients after new deltas, their
        mean and longest wall-clock duration and their mean CPU time (ms; the gap is
        time spent waiting for a core or the GIL), and the delay from the hub's wake-up
        to the start of the pass (mean, longest; ms)."""
        passes = sum(s.passes for s in self._shards)
        seconds = sum(s.pass_seconds for s in self._shards)
        cpu = sum(s.pass_cpu for s in self._shards)
        return {
            "threads": len(self._shards),
            "streams": self.clients,
            "passes": passes,
            "passMeanMs": round(1000 * seconds / passes, 3) if passes else None,
            "passMaxMs": round(1000 * max(s.pass_max for s in self._shards), 3),
            "passCpuMeanMs": round(1000 * cpu / passes, 3) if passes else None,
            "wakeLagMeanMs": (
                round(1000 * sum(s.wake_lag for s in self._shards) / passes, 3) if passes else None
            ),
            "wakeLagMaxMs": round(1000 * max(s.wake_lag_max for s in self._shards), 3),
        }

    def add(self, sock: socket.socket, header: bytes, handoff: Handoff) -> None:
        """Take over ``sock``: send ``header`` and the handoff's first bytes, then the
        deltas. The socket is the fan-out's from now on (closed by it)."""
        with self._lock:
            if self._closed:
                sock.close()
                handoff.done()
                return
            shard = next(self._next)
        handoff.first = header + handoff.first
        shard.put(sock, handoff)

    def close(self) -> None:
        """Stop the shards and close every stream."""
        with self._lock:
            self._closed = True
        for shard in self._shards:
            self.hub.remove_wakeup(shard.wake)
            shard.stop()
        for shard in self._shards:
            shard.join(5)


class _Shard(threading.Thread):
    def __init__(self, owner: FanOut, k: int) -> None:
        super().__init__(name=f"live-fanout-{k}", daemon=True)
        self.owner = owner
        self.hub = owner.hub
        self.sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._woken = False
        self._woken_at = 0.0  # perf_counter of the first wake-up not yet acted on
        self._stopping = False
        self._inbox: list[tuple[socket.socket, Handoff]] = []
        self._inbox_lock = threading.Lock()
        self.clients: dict[int, _Client] = {}
        self._seen: tuple[str, int] = ("", -1)
        # passes over every client after new deltas: count, seconds, the longest
        self.passes = 0
        self.pass_seconds = 0.0
        self.pass_cpu = 0.0
        self.pass_max = 0.0
        # delay from the hub's wake-up to the start of the pass it asked for: sum, max
        self.wake_lag = 0.0
        self.wake_lag_max = 0.0

    @property
    def inbox_len(self) -> int:
        return len(self._inbox)

    # --- called from other threads --------------------------------------------------

    def wake(self) -> None:
        """Make the loop look at the ring (from the hub's notifier)."""
        if self._woken:
            return
        self._woken = True
        if not self._woken_at:
            self._woken_at = time.perf_counter()
        # a full wake socket already holds wake-ups; a closed one: the shard is ending
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"x")

    def put(self, sock: socket.socket, handoff: Handoff) -> None:
        with self._inbox_lock:
            self._inbox.append((sock, handoff))
        self._woken = False  # a new client must be looked at even if a wake is pending
        self.wake()

    def stop(self) -> None:
        self._stopping = True
        self._woken = False
        self.wake()

    # --- the loop -------------------------------------------------------------------

    def run(self) -> None:
        next_beat = time.monotonic() + 1.0
        timeout = 1.0
        last_pass = -1e9
        try:
            while not self._stopping and not self.hub.closed:
                for key, mask in self.sel.select(timeout=timeout):
                    if key.data is None:
                        self._drain_wake()
                        continue
                    self._on_socket(key.data, mask)
                self._take_inbox()
                timeout = 1.0
                head = (self.hub.epoch, self.hub.head)
                # the first deltas after a pause go out at once; closer together, at most
                # one pass per ``notify_interval`` (fewer, larger writes under load)
                gap = last_pass + (self.hub.notify_interval or 0.0) - time.perf_counter()
                if head != self._seen and gap > 0:
                    timeout = gap
                elif head != self._seen:
                    self._seen = head
                    t0, c0 = time.perf_counter(), time.thread_time()
                    last_pass = t0
                    woken_at, self._woken_at = self._woken_at, 0.0
                    if woken_at:
                        self.wake_lag += t0 - woken_at
                        self.wake_lag_max = max(self.wake_lag_max, t0 - woken_at)
                    self._pump_all(beat=False)
                    took = time.perf_counter() - t0
                    self.passes += 1
                    self.pass_seconds += took
                    self.pass_cpu += time.thread_time() - c0
                    self.pass_max = max(self.pass_max, took)
                now = time.monotonic()
                if now >= next_beat:
                    next_beat = now + 1.0
                    self._heartbeats(now)
        except Exception:  # a bug here must not leave sockets open for ever
            logger.exception("live fan-out: the loop failed")
        finally:
            for c in list(self.clients.values()):
                self._drop(c)
            with self._inbox_lock:
                pending, self._inbox = self._inbox, []
            for sock, handoff in pending:
                sock.close()
                handoff.done()
            self.sel.close()
            self._wake_r.close()
            self._wake_w.close()

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while self._wake_r.recv(4096):
                pass
        # cleared after the drain: a wake-up from now on sends a byte again, and one
        # that came in between is seen by the head check that follows in the loop
        self._woken = False

    def _take_inbox(self) -> None:
        if not self._inbox:
            return
        with self._inbox_lock:
            new, self._inbox = self._inbox, []
        for sock, handoff in new:
            sock.setblocking(False)
            c = _Client(sock, handoff)
            try:
                self.sel.register(sock, selectors.EVENT_READ, c)
            except (ValueError, OSError):
                sock.close()
                handoff.done()
                continue
            self.clients[sock.fileno()] = c
            self.hub.client_opened()
            if self._flush(c):
                self._pump(c, beat=False, shared={})

    def _on_socket(self, c: _Client, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            try:
                data = c.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b""
            if data == b"":  # the client went
                self._drop(c)
                return
        if mask & selectors.EVENT_WRITE and self._flush(c):
            self._pump(c, beat=False, shared={})  # drained: catch up from its cursor

    def _pump_all(self, beat: bool) -> None:
        shared: dict[tuple, tuple[bytes | None, str, int]] = {}
        for c in list(self.clients.values()):
            self._pump(c, beat, shared)

    def _heartbeats(self, now: float) -> None:
        due = now - self.owner.heartbeat
        shared: dict[tuple, tuple[bytes | None, str, int]] = {}
        for c in list(self.clients.values()):
            if c.last_write <= due:
                self._pump(c, beat=True, shared=shared)

    def _pump(self, c: _Client, beat: bool, shared: dict) -> None:
        """Give ``c`` what the ring holds past its cursor (unless its buffer is full)."""
        if c.sock.fileno() < 0 or len(c.out) > self.owner.max_buffer:
            return
        if not beat and c.epoch == self.hub.epoch and c.cursor == self.hub.head:
            return
        key = (c.epoch, c.cursor, beat) if c.filt.everything else None
        got = shared.get(key) if key is not None else None
        if got is None:
            text, epoch, head = self.hub.next_event(c.filt, c.epoch, c.cursor, beat)
            got = (None if text is None else text.encode(), epoch, head)
            if key is not None:
                shared[key] = got
        data, c.epoch, c.cursor = got
        if data:
            self._send(c, data)

    def _send(self, c: _Client, data: bytes) -> None:
        """Send ``data`` after what ``c`` has waiting; straight from the shared bytes
        when nothing waits (the usual case: no copy)."""
        if c.out:
            c.out += data
            self._flush(c)
            return
        try:
            n = _send_now(c.sock, data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self._drop(c)
            return
        c.last_write = time.monotonic()
        if n < len(data):
            c.out += memoryview(data)[n:]
            self._flush(c)

    def _flush(self, c: _Client) -> bool:
        """Send what ``c`` has waiting; True when it all went (False: dropped or the
        socket is full, and the selector now watches it for writability)."""
        out = c.out
        try:
            while out:
                n = c.sock.send(out)
                del out[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(c)
            return False
        c.last_write = time.monotonic()
        want_write = bool(out)
        if want_write != c.writing:
            c.writing = want_write
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
            try:
                self.sel.modify(c.sock, events, c)
            except (KeyError, ValueError, OSError):
                self._drop(c)
                return False
        return not want_write

    def _drop(self, c: _Client) -> None:
        fd = c.sock.fileno()
        if self.clients.pop(fd, None) is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(c.sock)
        c.sock.close()
        self.hub.client_closed()
        c.handoff.done()


def _gil_holding_send() -> Callable[[socket.socket, bytes], int] | None:
    """libc's ``send`` called *without* releasing the GIL (``ctypes.PyDLL``), Linux only.

    ``socket.send`` releases the GIL around every call and takes it back after: with
    500 streams that is 500 hand-overs per pass, and on a busy machine each one may wait
    for another thread's whole switch interval (the GIL convoy), so one pass over the
    clients took 100+ ms of wall time for ~1 ms of CPU. A send on a non-blocking socket
    returns at once, so holding the GIL through it costs the other threads nothing.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.PyDLL(None, use_errno=True)
        fn = libc.send
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_ssize_t
    flags = getattr(socket, "MSG_NOSIGNAL", 0) | getattr(socket, "MSG_DONTWAIT", 0)

    def send(sock: socket.socket, data: bytes) -> int:
        n = fn(sock.fileno(), data, len(data), flags)
        if n < 0:
            err = ctypes.get_errno()
            if err in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return 0
            raise OSError(err, os.strerror(err))
        return int(n)

    return send


def _plain_send(sock: socket.socket, data: bytes) -> int:
    return sock.send(data)


_send_now = _gil_holding_send() or _plain_send


def response_header(status: str, headers: list[tuple[str, str]]) -> bytes:
    """An HTTP/1.1 response head for a stream that the fan-out writes: the app's
    status and headers, minus framing ones; the body ends when the connection does."""
    lines = [f"HTTP/1.1 {status}"]
    for k, v in headers:
        if k.lower() in ("content-length", "transfer-encoding", "connection"):
            continue
        lines.append(f"{k}: {v}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def detach_socket(channel: Any) -> socket.socket | None:
    """A duplicate of a waitress channel's socket, once what waitress still had to
    send on it went out (a keep-alive connection may carry an earlier response);
    None when the connection is gone."""
    deadline = time.monotonic() + 10.0
    with channel.outbuf_lock:
        while channel.connected and channel.total_outbufs_len > 0:
            if time.monotonic() > deadline:
                return None
            channel.server.pull_trigger()
            channel.outbuf_lock.wait(0.05)
    sock = channel.socket
    if not channel.connected or sock is None:
        return None
    try:
        return sock.dup()
    except OSError:
        return None
