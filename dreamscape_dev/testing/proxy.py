"""A loopback TCP proxy a test can cut and restore, to simulate an outage.

The embedded broker keeps its data only in memory, and restarting PostgreSQL or the SMTP
sink changes more than the network, so outages are simulated here instead: clients talk
to the proxy, and `cut()` drops every live connection and resets new ones until
`restore()`. The services behind it never notice.

One accept thread plus two pump threads per connection keeps the code obvious; the
traffic in tests is small.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from collections.abc import Callable
from types import TracebackType

_BUFFER = 65536


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _abort(sock: socket.socket) -> None:
    """Close `sock` with a reset (SO_LINGER 0), waking any thread blocked on it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class _Link:
    """One client connection and its upstream connection, closed together."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream: socket.socket | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._pumps_left = 2

    def attach(self, upstream: socket.socket) -> bool:
        """Record the upstream socket; False (and it is closed) if the link was cut meanwhile."""
        with self._lock:
            if not self._closed:
                self.upstream = upstream
                return True
        upstream.close()
        return False

    def close(self) -> None:
        """Abort both sockets; safe to call from any thread, any number of times."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        _abort(self.client)
        if self.upstream is not None:
            _abort(self.upstream)

    def pump_done(self) -> bool:
        """Count one finished direction; True when both are finished."""
        with self._lock:
            self._pumps_left -= 1
            return self._pumps_left == 0


def _pump(
    src: socket.socket, dst: socket.socket, link: _Link, forget: Callable[[_Link], None]
) -> None:
    """Copy bytes from `src` to `dst` until EOF or an error, then half-close `dst`."""
    try:
        while data := src.recv(_BUFFER):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        link.close()
    if link.pump_done():
        link.close()
        forget(link)


class TcpProxy:
    """Forwards connections on 127.0.0.1:`port` to `target_host`:`target_port`."""

    def __init__(self, target_host: str, target_port: int, *, connect_timeout: float = 5.0) -> None:
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self._connect_timeout = connect_timeout
        self._listener = socket.create_server((self.host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._cut = False
        self._closing = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        """`host:port` of the proxy, as clients should dial it."""
        return f"{self.host}:{self.port}"

    @property
    def is_cut(self) -> bool:
        """Whether the proxy is currently dropping connections."""
        return self._cut

    def cut(self) -> None:
        """Drop every live connection and reset new ones until `restore()`."""
        with self._lock:
            self._cut = True
            links, self._links = self._links, set()
        for link in links:
            link.close()

    def restore(self) -> None:
        """Forward new connections again."""
        with self._lock:
            self._cut = False

    def close(self) -> None:
        """Stop accepting, drop every connection and join the accept thread."""
        self._closing = True
        self.cut()
        self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._closing:
                for key, _ in selector.select():
                    if key.fileobj is self._listener and not self._closing:
                        self._accept()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        with self._lock:
            if self._cut:
                _abort(client)
                return
            link = _Link(client)
            self._links.add(link)
        threading.Thread(target=self._serve, args=(link,), daemon=True).start()

    def _serve(self, link: _Link) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=self._connect_timeout)
        except OSError:
            link.close()
            self._forget(link)
            return
        upstream.settimeout(None)
        if not link.attach(upstream):
            return
        args = (upstream, link.client, link, self._forget)
        threading.Thread(target=_pump, args=args, daemon=True).start()
        _pump(link.client, upstream, link, self._forget)

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)
