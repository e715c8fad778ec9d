"""The rendezvous store: a tiny TCP key-value store that rank 0 serves to every rank.

The ranks meet there (each says hello with its rank and world size), exchange small values
(the NCCL unique id, initial weights on the host path, gradients of the host communicator)
and wait at barriers. One frame each way per request: a 12-byte prefix (big-endian u32
header length, u64 payload length), a JSON header, the raw payload. No pickle.

Each rank holds one connection; when it closes without a goodbye, the store marks that rank
as gone and every wait of every other rank fails at once with an error naming it, so a dead
peer never leaves the others hanging. A wait that outlives its timeout fails naming what it
waited for. A key set with ``reads=k`` is deleted after k reads (all-reduce parts do not pile
up).

Requests (``op``): ``hello`` {rank, world_size, role}; ``set`` {key, reads} + payload; ``get``
{key, timeout, what} -> payload; ``barrier`` {name, timeout}; ``fail`` {message} (this rank
gives up, the others are told why); ``bye``; ``wait_failure`` (a watchdog's long poll: answers
when a rank fails).

Example:
    >>> server = StoreServer(1, "127.0.0.1", 0)
    >>> client = StoreClient("127.0.0.1", server.port, rank=0, world_size=1, timeout=5)
    >>> client.set("k", b"v"); client.get("k")
    b'v'
    >>> client.close(); server.close()
"""

import json
import socket
import struct
import threading
import time

from sukiyaki.distributed.cluster.env import ClusterError

_PREFIX = struct.Struct("!IQ")
MAX_HEADER = 1 << 20
MAX_PAYLOAD = 1 << 36
#: Extra seconds a client waits for the store's own answer beyond a request's timeout.
ANSWER_MARGIN = 10.0


def send_frame(sock, header, payload=b""):
    """Write one frame: prefix, JSON header, raw payload."""
    head = json.dumps(header, separators=(",", ":")).encode()
    payload = memoryview(payload).cast("B") if payload else b""
    sock.sendall(_PREFIX.pack(len(head), len(payload)) + head)
    if len(payload):
        sock.sendall(payload)


def _recv_exact(sock, n):
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError("the connection closed")
        got += k
    return buf


def recv_frame(sock):
    """Read one frame: (header dict, payload bytes); EOFError when the peer closed, ValueError if malformed."""
    hlen, plen = _PREFIX.unpack(_recv_exact(sock, _PREFIX.size))
    if hlen > MAX_HEADER or plen > MAX_PAYLOAD:
        raise ValueError(f"frame of {hlen} header / {plen} payload bytes is too large")
    try:
        header = json.loads(bytes(_recv_exact(sock, hlen)))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"frame header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError("frame header is not a JSON object")
    return header, bytes(_recv_exact(sock, plen)) if plen else b""


class _Failed(Exception):
    pass


class StoreServer:
    """Rank 0's store (see module docstring); serves from daemon threads until closed.

    Args:
        world_size: the ranks expected.
        host, port: where to listen (port 0: any free port; ``self.port`` says which).
    """

    def __init__(self, world_size, host, port):
        self.world_size = world_size
        try:
            self._sock = socket.create_server((host, port))
        except OSError as exc:
            raise ClusterError(f"rank 0: cannot serve the rendezvous store on {host or '*'}:{port} "
                               f"({exc.strerror or exc}); choose a free MASTER_PORT") from None
        self.port = self._sock.getsockname()[1]
        self._cond = threading.Condition()
        self._values = {}  # key -> [payload, reads left or None]
        self._barriers = {}  # name -> [arrived ranks, ranks that left it]
        self._joined = {}  # rank -> connection
        self._gone = {}  # rank -> why it left (without a goodbye), or its own failure message
        self._fatal = None  # a failure that is no rank's death (a world-size mismatch)
        self._conns = set()
        self._closed = False
        threading.Thread(target=self._accept, name="sukiyaki-store", daemon=True).start()

    # --- the failure every wait checks ---
    def _failure(self):
        if self._fatal:
            return self._fatal
        if self._gone:
            rank = min(self._gone)
            return f"rank {rank} {self._gone[rank]}"
        return None

    def _wait(self, ready, timeout, on_timeout):
        """Wait (holding the condition) until ready() is true; _Failed on a failure or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            failure = self._failure()
            if failure:
                raise _Failed(failure)
            if ready():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Failed(on_timeout())
            self._cond.wait(min(left, 1.0))

    # --- connections ---
    def _accept(self):
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        rank, role, said_bye = None, None, False
        try:
            while True:
                header, payload = recv_frame(conn)
                op = header.get("op")
                if op == "hello":
                    rank, role = self._hello(header, conn)
                    send_frame(conn, {"ok": True})
                    continue
                if rank is None:
                    raise ValueError(f"request {op!r} before hello")
                if op == "bye":
                    said_bye = True
                    send_frame(conn, {"ok": True})
                    break
                try:
                    reply, data = self._request(op, header, payload, rank)
                except _Failed as exc:
                    reply, data = {"error": str(exc)}, b""
                send_frame(conn, reply, data)
        except _Failed as exc:  # a refused hello
            try:
                send_frame(conn, {"error": str(exc)})
            except OSError:
                pass
        except (OSError, EOFError, ValueError, struct.error):
            pass
        finally:
            with self._cond:
                self._conns.discard(conn)
                if role == "rank" and self._joined.get(rank) is conn:
                    del self._joined[rank]
                    if not said_bye and rank not in self._gone:
                        self._gone[rank] = ("left: its connection to the store closed (the process ended, "
                                            "was killed, or the network failed)")
                self._cond.notify_all()
            conn.close()

    def _hello(self, h, conn):
        rank, world, role = h.get("rank"), h.get("world_size"), h.get("role", "rank")
        with self._cond:
            if world != self.world_size:
                self._fatal = (f"rank {rank} has WORLD_SIZE {world}, rank 0 has {self.world_size}: every rank "
                               f"must be launched with the same WORLD_SIZE")
                self._cond.notify_all()
                raise _Failed(self._fatal)
            if not isinstance(rank, int) or not 0 <= rank < self.world_size:
                raise _Failed(f"rank {rank!r} is out of range for WORLD_SIZE {self.world_size}")
            if role == "rank":
                if rank in self._joined:
                    self._fatal = f"two processes claim rank {rank}: every rank needs its own RANK"
                    self._cond.notify_all()
                    raise _Failed(self._fatal)
                self._joined[rank] = conn
            self._cond.notify_all()
        return rank, role

    def _request(self, op, h, payload, rank):
        with self._cond:
            if op == "set":
                reads = h.get("reads")
                self._values[h["key"]] = [payload, reads]
                self._cond.notify_all()
                return {"ok": True}, b""
            if op == "get":
                key, timeout = h["key"], float(h.get("timeout", 60))
                self._wait(lambda: key in self._values, timeout,
                           lambda: f"{h.get('what') or repr(key)}: nothing within {timeout:g} s (a rank hangs?)")
                entry = self._values[key]
                if entry[1] is not None:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        del self._values[key]
                return {"ok": True}, entry[0]
            if op == "barrier":
                name, timeout = h["name"], float(h.get("timeout", 60))
                arrived, left = self._barriers.setdefault(name, [set(), set()])
                arrived.add(rank)
                self._cond.notify_all()
                self._wait(lambda: len(arrived) >= self.world_size, timeout,
                           lambda: (f"barrier {name!r}: rank(s) "
                                    f"{', '.join(str(r) for r in range(self.world_size) if r not in arrived)} "
                                    f"did not arrive within {timeout:g} s"))
                left.add(rank)
                if len(left) >= self.world_size:
                    del self._barriers[name]
                return {"ok": True}, b""
            if op == "fail":
                if rank not in self._gone:
                    self._gone[rank] = f"failed: {h.get('message', 'no reason given')}"
                self._cond.notify_all()
                return {"ok": True}, b""
            if op == "wait_failure":
                while not self._failure() and not self._closed:
                    self._cond.wait(1.0)
                return {"failure": self._failure()}, b""
            raise _Failed(f"unknown store request {op!r}")

    def wait_idle(self, timeout):
        """Wait until every rank's connection has closed (the end of a run), at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._joined and time.monotonic() < deadline:
                self._cond.wait(0.1)

    def close(self):
        """Stop serving; open connections are closed."""
        with self._cond:
            self._closed = True
            conns = list(self._conns)
            self._cond.notify_all()
        try:
            self._sock.close()
        except OSError:
            pass
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class StoreClient:
    """One rank's connection to the store.

    Args:
        host, port: rank 0's store (MASTER_ADDR, MASTER_PORT).
        rank, world_size: this process's.
        timeout: seconds to wait for the store to come up, and the default wait of a request.
        role: 'rank' (the rank's own connection: closing it without :meth:`close` tells the
            others this rank is gone) or 'watch' (a watchdog's second connection).
    """

    def __init__(self, host, port, rank, world_size, timeout=300.0, role="rank", who=None):
        self.rank, self.world_size, self.timeout, self.role = rank, world_size, float(timeout), role
        self.who = who or f"rank {rank}"
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._lock = threading.Lock()
        deadline = time.monotonic() + self.timeout
        last = None
        while True:
            try:
                self._sock = socket.create_connection((host, port), timeout=max(0.1, min(5.0, deadline - time.monotonic())))
                break
            except OSError as exc:
                last = exc
                if time.monotonic() >= deadline:
                    raise ClusterError(f"{self.who}: no rendezvous store at {self.address} after {self.timeout:g} s "
                                       f"({last.strerror or last}); is rank 0 running, with the same MASTER_ADDR "
                                       f"and MASTER_PORT as this rank?") from None
                time.sleep(0.1)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request({"op": "hello", "rank": rank, "world_size": world_size, "role": role})

    def request(self, header, payload=b"", wait=None):
        """Send one request and return (reply header, payload); ClusterError on a failure."""
        with self._lock:
            if self._sock is None:
                raise ClusterError(f"{self.who}: the connection to the store at {self.address} is closed")
            limit = (self.timeout if wait is None else wait) + ANSWER_MARGIN
            try:
                self._sock.settimeout(limit)
                send_frame(self._sock, header, payload)
                reply, data = recv_frame(self._sock)
            except socket.timeout:
                raise ClusterError(f"{self.who}: the store at {self.address} (rank 0) did not answer "
                                   f"{header.get('op')!r} within {limit:g} s (rank 0 hangs?)") from None
            except (OSError, EOFError, ValueError, struct.error) as exc:
                raise ClusterError(f"{self.who}: lost the connection to rank 0's store at {self.address} "
                                   f"({exc}); rank 0 ended or died") from None
        if "error" in reply:
            raise ClusterError(f"{self.who}: {reply['error']}")
        return reply, data

    def set(self, key, value, reads=None):
        """Store bytes under ``key`` (deleted after ``reads`` gets when given)."""
        self.request({"op": "set", "key": key, "reads": reads}, value)

    def get(self, key, timeout=None, what=None):
        """The bytes under ``key``, waiting until some rank sets them (ClusterError after ``timeout``)."""
        t = self.timeout if timeout is None else float(timeout)
        return self.request({"op": "get", "key": key, "timeout": t, "what": what}, wait=t)[1]

    def barrier(self, name, timeout=None):
        """Return when every rank reached barrier ``name`` (ClusterError naming the absent ranks)."""
        t = self.timeout if timeout is None else float(timeout)
        self.request({"op": "barrier", "name": name, "timeout": t}, wait=t)

    def fail(self, message):
        """Tell the other ranks this one gives up, and why (best effort)."""
        try:
            self.request({"op": "fail", "message": message}, wait=5.0)
        except ClusterError:
            pass

    def wait_failure(self):
        """Block until some rank fails; returns the failure's text (None when the store closed)."""
        with self._lock:
            sock = self._sock
        if sock is None:
            return None
        sock.settimeout(None)
        send_frame(sock, {"op": "wait_failure"})
        reply, _ = recv_frame(sock)
        return reply.get("failure")

    def close(self):
        """Say goodbye and close (the store then knows this rank ended cleanly)."""
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is None:
            return
        if self.role == "watch":  # its one request may be waiting: no goodbye, just close
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            return
        try:
            sock.settimeout(5.0)
            send_frame(sock, {"op": "bye"})
            recv_frame(sock)
        except (OSError, EOFError, ValueError, struct.error):
            pass
        finally:
            sock.close()
