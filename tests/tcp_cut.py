"""The network between one worker host and PostgreSQL, as a real TCP proxy that a test can cut.

    with TcpCut.to_database(app_url) as net:
        url = net.url(app_url)     # the same database, reached through the proxy
        net.cut("blackhole")       # or "reset"
        net.restore()

Runs in threads of the test process (two per connection, blocking sockets: no proxy-made
deadlock when both sides send at once). Modes:

- ``blackhole`` (packets dropped by a partition): nothing is forwarded either way, data and
  end-of-stream alike, and every socket stays open; new connections are not accepted (the
  kernel's listen backlog completes their handshake, then nothing ever answers). What was held is
  delivered on ``restore``, like TCP retransmitting once a partition heals. The proxy's own kernel
  acknowledges what it holds, so this is the case TCP keepalives and ``tcp_user_timeout`` cannot
  see on the client: only a client-side deadline on each call ends the wait.
- ``reset`` (a firewall's REJECT): every connection is closed with a RST and new ones are
  refused (the listening socket is closed); ``restore`` (or ``blackhole``) listens again on the
  same port.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

OPEN, BLACKHOLE, RESET, CLOSED = "open", "blackhole", "reset", "closed"
ACCEPT_POLL_S = 0.1  # how soon the accepting thread notices a mode change


class TcpCut:
    def __init__(self, upstream: str | tuple[str, int]):
        """``upstream``: a Unix socket path or a (host, port) to forward every connection to."""
        self.upstream = upstream
        self.mode = OPEN
        self._changed = threading.Condition()
        self._links: set[_Link] = set()
        self._listener: socket.socket | None = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name=f"tcp-cut-{self.port}", daemon=True)
        self._acceptor.start()

    @classmethod
    def to_database(cls, url: str) -> TcpCut:
        """A proxy to the server of a libpq URL (TCP, or a Unix socket directory in ``?host=``)."""
        parts = urlsplit(url)
        host = dict(parse_qsl(parts.query)).get("host") or parts.hostname or "/var/run/postgresql"
        port = parts.port or 5432
        return cls(f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port))

    def url(self, url: str) -> str:
        """``url`` with its server replaced by this proxy (its user, database and options kept)."""
        parts = urlsplit(url)
        user = parts.netloc.rpartition("@")[0]
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "hostaddr", "port")])
        netloc = f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))

    def cut(self, mode: str) -> None:
        if mode not in (BLACKHOLE, RESET):
            raise ValueError(f"cut mode {mode!r}: expected {BLACKHOLE} or {RESET}")
        self._set(mode)

    def restore(self) -> None:
        self._set(OPEN)

    def close(self) -> None:
        self._set(CLOSED)
        self._acceptor.join()

    def __enter__(self) -> TcpCut:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _set(self, mode: str) -> None:
        with self._changed:
            self.mode = mode
            if mode in (RESET, CLOSED):
                if self._listener is not None:
                    _shut(self._listener)  # refused from now on (and the accepting thread wakes)
                    self._listener.close()
                    self._listener = None
                for link in list(self._links):
                    link.abort(rst=mode == RESET)
            elif self._listener is None:  # back from a reset: the same port again
                self._listener = self._listen(self.port)
            self._changed.notify_all()

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        listener.settimeout(ACCEPT_POLL_S)
        return listener

    def _accept(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self.mode in (OPEN, CLOSED))
                if self.mode == CLOSED:
                    return
                listener = self._listener
            assert listener is not None  # open: listening
            try:
                client, _ = listener.accept()
            except OSError:  # a poll timeout, or the listener closed by a reset
                continue
            client.settimeout(None)
            try:
                server = _connect(self.upstream)
            except OSError:
                client.close()
                continue
            with self._changed:
                if self.mode != OPEN:  # cut while connecting upstream: as if never accepted
                    _linger0(client)
                    client.close()
                    server.close()
                    continue
                link = _Link(self, client, server)
                self._links.add(link)
            link.start()

    def passes(self) -> bool:
        """For a pump about to forward: wait while blackholed; False once reset or closed."""
        with self._changed:
            self._changed.wait_for(lambda: self.mode != BLACKHOLE)
            return self.mode == OPEN

    def forget(self, link: _Link) -> None:
        with self._changed:
            self._links.discard(link)


class _Link:
    """One proxied connection: a pump thread per direction; the last one to end closes both sockets."""

    def __init__(self, cut: TcpCut, client: socket.socket, server: socket.socket):
        self.cut, self.socks = cut, (client, server)
        self._lock = threading.Lock()
        self._ended = 0
        self._rst = False

    def start(self) -> None:
        client, server = self.socks
        for src, dst in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = src.recv(65536)
                if not self.cut.passes() or not data:
                    break
                dst.sendall(data)
        with self._lock:
            self._ended += 1
            last = self._ended == 2
        if last:
            for sock in self.socks:
                sock.close()
            self.cut.forget(self)
        else:
            self.abort(rst=False)  # the other pump wakes, ends, and closes

    def abort(self, rst: bool) -> None:
        """Wake both pumps so they end. With ``rst``, their close sends a RST: they are woken by
        shutting the reading side only, which sends nothing (shutting the writing side sends a FIN)."""
        self._rst = self._rst or rst
        for sock in self.socks:
            if self._rst:
                _linger0(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD if self._rst else socket.SHUT_RDWR)


def _connect(upstream: str | tuple[str, int]) -> socket.socket:
    if isinstance(upstream, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.connect(upstream)
    except OSError:
        sock.close()
        raise
    return sock


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _linger0(sock: socket.socket) -> None:
    """Closing ``sock`` then sends a RST, not a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
