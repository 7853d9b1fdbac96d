"""_reader.py — the subscriber side in pure Python: subscribe over the
broker's SOCK_SEQPACKET socket, check and map the batch ring (read-only) and
the release page, hand out batches whose columns are views of the mapping,
release them, and sleep on the eventfd when there is nothing to read.

The protocol is src/lib/consumer.c's, step for step; the comments say where
Python has to do it differently."""
import collections
import errno
import fcntl
import mmap
import os
import select
import socket
import stat
import threading
import time

from . import (BatchReleased, BrokerGone, BrokerRefused, ExpbusError,
               ProtocolError, Timeout, default_socket, dtype as _dtype,
               parse_schema)
from . import _proto as P

_MASK64 = (1 << 64) - 1
_ONE = (1).to_bytes(8, "little")
# Longest single wait on the eventfd; see Subscription._wait.
_SLICE_S = 0.05

try:
    import numpy as _np
except ImportError:  # the memoryview path
    _np = None

# A full memory barrier: taking and dropping an uncontended lock is a
# LOCK-prefixed read-modify-write (glibc's sem_trywait / CPython's mutex),
# and on x86-64 every locked instruction orders all earlier loads and stores
# before all later ones. Python has no other way to say seq_cst fence.
_fence_lock = threading.Lock()


def _fence():
    _fence_lock.acquire()
    _fence_lock.release()


Column = collections.namedtuple("Column", "name dtype shape offset elem_size")
Column.__doc__ = """A column of every batch: name, expbus DType, shape of
one row, byte offset in a batch slot, bytes per row."""


class Batch:
    """One batch, read in place. batch["obs"] is a read-only view of the
    batch ring, [count, *shape]; valid until the batch is released (by
    release(), leaving a `with batch:` block, releasing a later batch, or,
    with auto_release, the iterator moving on). Copy what you keep."""

    __slots__ = ("_sub", "_index", "seq", "count", "flush_reason", "checksum",
                 "dropped_total", "publish_ns", "_released")

    def __init__(self, sub, index, seq, count, flush_reason, checksum,
                 dropped_total, publish_ns):
        self._sub = sub
        self._index = index  # slot in the ring
        self.seq = seq  # batch number for this subscription, from 0
        self.count = count  # records in the batch
        self.flush_reason = flush_reason  # expbus.FLUSH_*
        self.checksum = checksum  # XXH3-64 of the used columns, or 0
        self.dropped_total = dropped_total  # lossy drops so far
        self.publish_ns = publish_ns  # CLOCK_MONOTONIC when published
        self._released = False

    def __getitem__(self, name):
        if self._released:
            raise BatchReleased(
                f"batch {self.seq} was released: its memory belongs to the "
                "broker again (copy columns you keep before releasing)")
        return self._sub._view(self._index, name, self.count)

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def keys(self):
        """Column names: header columns (seq, timestamp, source, game,
        player, turn, flags), then the schema's fields."""
        return self._sub.columns.keys()

    def __contains__(self, name):
        return name in self._sub.columns

    def items(self):
        return [(k, self[k]) for k in self.keys()]

    def arrays(self, names=None):
        """A dict of views: all columns, or those named."""
        return {k: self[k] for k in (names or self.keys())}

    def __len__(self):
        return self.count

    @property
    def released(self):
        return self._released

    def release(self):
        """Gives this batch back, and every batch received before it.
        Releasing a released batch does nothing."""
        if not self._released:
            self._sub._release(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False

    def __repr__(self):
        state = "released" if self._released else "held"
        return (f"<expbus.Batch seq={self.seq} count={self.count} "
                f"flush_reason={self.flush_reason} {state}>")


def _check_fd(fd, size, seals, what):
    """consumer.c's shm_check: a regular file (memfd) of exactly size bytes
    that carries at least seals."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size != size:
        raise ProtocolError(
            f"the {what} from the broker is invalid: not a memfd of the "
            f"announced {size} bytes (it has {st.st_size})", errno.EPROTO)
    try:
        have = fcntl.fcntl(fd, P.F_GET_SEALS)
    except OSError:
        raise ProtocolError(f"the {what} from the broker is not a sealable "
                            "memfd", errno.EPROTO) from None
    if have & seals != seals:
        raise ProtocolError(
            f"the {what} from the broker lacks seals (has {have:#x}, needs "
            f"{seals:#x})", errno.EPROTO)


def _check_eventfd(fd, what):
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return  # no /proc: nothing more to check
    if target != "anon_inode:[eventfd]":
        raise ProtocolError(f"the {what} from the broker is {target}, not an "
                            "eventfd", errno.EPROTO)


def _map(fd, size, writable):
    prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
    m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=prot)
    # As libexpbus: a forked child does not inherit the mapping, so it
    # cannot become a second, untracked reader or releaser.
    if hasattr(m, "madvise") and hasattr(mmap, "MADV_DONTFORK"):
        m.madvise(mmap.MADV_DONTFORK)
    return m


def _policy(policy):
    if policy in (P.LOSSLESS, "lossless"):
        return P.LOSSLESS
    if policy in (P.LOSSY, "lossy"):
        return P.LOSSY
    raise ValueError(f"policy must be 'lossless' or 'lossy', not {policy!r}")


def _ids(ids, what):
    if ids is None:
        return []
    out = sorted({int(i) for i in ids})
    if len(out) > P.PROTO_MAX_FILTER:
        raise ValueError(f"a filter may list at most {P.PROTO_MAX_FILTER} "
                         f"{what} ids")
    if out and not (0 <= out[0] and out[-1] < 1 << 32):
        raise ValueError(f"{what} ids must fit in 32 bits")
    return out


def _connect_failed(path, e):
    """Why connecting to path failed, as client.c says it: the kernel gives
    ECONNREFUSED both for a socket nobody listens on and for a path that is
    no socket at all."""
    if e.errno in (errno.EACCES, errno.EPERM):
        return (f"permission denied on the broker's socket {path}: it "
                "admits only the user expbusd runs as (and its --group, if "
                "given); run as that user or start expbusd with --group")
    if e.errno == errno.ENOENT:
        return (f"no broker socket at {path} (is expbusd running with "
                f"--socket {path}?)")
    if e.errno == errno.ECONNREFUSED:
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            mode = None
        if mode is not None and not stat.S_ISSOCK(mode):
            kind = ("regular file" if stat.S_ISREG(mode) else
                    "directory" if stat.S_ISDIR(mode) else "special file")
            return (f"{path} is not a socket but a {kind}: give the "
                    "broker's --socket path")
        return (f"no broker listens on {path} (expbusd stopped or died and "
                "left its socket behind)")
    return f"cannot reach the broker at {path}: {e.strerror}"


class Subscription:
    """A subscription to a stream: iterate it for batches. See subscribe()."""

    def __init__(self, stream, socket=None, *, batch_size=0, max_delay=None,
                 batch_slots=0, games=None, players=None, min_turn=0,
                 policy="lossless", group=None, checksum=False, timeout=None,
                 auto_release=True, wait=0.0, use_numpy=None):
        self._sock = None
        self._mm = self._rel = None
        self._event_fd = self._wake_fd = -1
        self._mvs = []
        self._held = collections.deque()
        self._gone = False
        self.closed = False
        self.timeout = timeout
        self.auto_release = auto_release
        self._last = None
        if use_numpy is None:
            use_numpy = _np is not None
        elif use_numpy and _np is None:
            raise ImportError("use_numpy=True but numpy is not importable")
        self._use_numpy = use_numpy

        self.stream = stream
        self.socket_path = socket or default_socket()
        sname = P.name_field(stream, "stream")
        gname = P.name_field(group or "", "group", may_be_empty=True)
        delay_us = 0 if max_delay is None else max(1, round(max_delay * 1e6))
        for v, what in ((batch_size, "batch_size"), (batch_slots, "batch_slots"),
                        (delay_us, "max_delay"), (min_turn, "min_turn")):
            if not 0 <= v < 1 << 32:
                raise ValueError(f"{what} out of range: {v}")
        req = P.subscribe_request(
            sname, gname, batch_size, delay_us, batch_slots, _policy(policy),
            min_turn, P.SUBSCRIBE_CHECKSUM if checksum else 0,
            _ids(games, "game"), _ids(players, "player"))
        try:
            self._subscribe(req, wait)
        except BaseException:
            self.close()
            raise

    # -- subscribing ------------------------------------------------------

    def _connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            s.connect(self.socket_path)
        except OSError as e:
            s.close()
            raise BrokerGone(_connect_failed(self.socket_path, e),
                             e.errno) from None
        return s

    def _subscribe(self, req, wait):
        deadline = time.monotonic() + wait
        while True:
            try:
                self._sock = self._connect()
                msg, fds = self._request(req)
                break
            except (BrokerGone, BrokerRefused) as e:
                retry = e.errno in (errno.ENOENT, errno.ECONNREFUSED)
                if self._sock is not None:
                    self._sock.close()
                    self._sock = None
                if not retry or time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)
        try:
            self._setup(msg, fds)
        finally:
            for fd in fds[:2]:  # the mappings keep the segments alive
                os.close(fd)

    def _request(self, req):
        s = self._sock
        try:
            s.send(req)
        except OSError as e:
            raise BrokerGone(f"sending to the broker at {self.socket_path}: "
                             f"{e.strerror}", e.errno) from None
        r, _, _ = select.select([s], [], [], P.REPLY_TIMEOUT_S)
        if not r:
            raise ExpbusError(f"broker at {self.socket_path} did not answer "
                              f"within {P.REPLY_TIMEOUT_S:.0f} s",
                              errno.ETIMEDOUT)
        msg, anc, flags, _ = s.recvmsg(
            16384, socket.CMSG_SPACE(4 * 32), socket.MSG_CMSG_CLOEXEC)
        fds = []
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                n = len(data) - len(data) % 4
                fds += [int.from_bytes(data[i:i + 4], "little", signed=True)
                        for i in range(0, n, 4)]
        try:
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise ProtocolError("the broker's reply was truncated",
                                    errno.EMSGSIZE)
            if not msg:
                raise BrokerGone("the broker closed the connection",
                                 errno.EPIPE)
            try:
                mtype = P.check_header(msg)
            except ValueError as e:
                raise ProtocolError(f"bad reply from broker: {e}",
                                    errno.EPROTO) from None
            if mtype == P.MSG_ERROR:
                err, text = P.error_reply(msg)
                raise BrokerRefused(f"broker refused: {text}", err)
            if mtype != P.MSG_OK_SUBSCRIBE or len(fds) != 4:
                raise ProtocolError(f"unexpected reply from broker (type "
                                    f"{mtype}, {len(fds)} fds)", errno.EPROTO)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return msg, fds

    def _setup(self, msg, fds):
        self._event_fd, self._wake_fd = fds[2], fds[3]
        ok = P.MSG_OK_SUBSCRIBE_S
        if len(msg) < ok.size:
            raise ProtocolError("malformed subscribe reply", errno.EPROTO)
        (*_, self.subscription_id, capacity, seg_size, self.schema_hash,
         schema_len, batch_size) = ok.unpack_from(msg)
        if len(msg) != ok.size + schema_len or schema_len >= 8192:
            raise ProtocolError("malformed subscribe reply", errno.EPROTO)
        self.schema_text = msg[ok.size:].decode(errors="replace")
        for fd, what in ((fds[2], "batch eventfd"), (fds[3], "wake eventfd")):
            _check_eventfd(fd, what)
        _check_fd(fds[0], seg_size, P.SEALS_READONLY, "batch ring")
        _check_fd(fds[1], P.RELEASE_PAGE_SIZE, P.SEALS_SHARED, "release page")
        if seg_size < P.BATCH_RING_SIZE:
            raise ProtocolError("the batch ring is smaller than its header",
                                errno.EPROTO)
        # Read-only: a write through any view raises instead of reaching
        # the broker's memory (FUTURE_WRITE would refuse PROT_WRITE anyway).
        self._mm = mm = _map(fds[0], seg_size, False)
        self._rel = rel = _map(fds[1], P.RELEASE_PAGE_SIZE, True)
        self.segment_size = seg_size
        self._check_headers(capacity, batch_size)

        # The shared counters, through native-format memoryviews: an aligned
        # 8-byte item is loaded and stored by one machine instruction
        # (memcpy of a constant 8), never torn. On x86-64 (TSO) a plain
        # store is a store-release and a plain load a load-acquire, which
        # is what ring.c's counters need; the fence above covers the one
        # place ring.c needs seq_cst.
        prod = P.BATCH_RING_PROD
        cons = P.RELEASE_PAGE_CONS
        self._tail = memoryview(mm)[prod:prod + 8].cast("Q")
        self._prod_sleeping = memoryview(mm)[prod + 8:prod + 12].cast("I")
        self._head_mv = memoryview(rel)[cons:cons + 8].cast("Q")
        self._sleeping = memoryview(rel)[cons + 8:cons + 12].cast("I")
        drop = P.BATCH_RING_DROPPED
        self._dropped_mv = memoryview(mm)[drop:drop + 8].cast("Q")
        self._mvs = [self._tail, self._prod_sleeping, self._head_mv,
                     self._sleeping, self._dropped_mv]
        self._head = self._head_mv[0]
        self._cached = self._tail[0]
        if (self._cached - self._head) & _MASK64 > self.capacity:
            raise ProtocolError("the batch ring's tail counter is impossible",
                                errno.EPROTO)
        self._poll = select.poll()
        self._poll.register(self._event_fd, select.POLLIN)
        self._poll.register(self._sock.fileno(), select.POLLRDHUP)
        self._views = [None] * self.capacity

    def _bad(self, what):
        return ProtocolError(f"the batch ring from the broker is invalid: "
                             f"{what}", errno.EPROTO)

    def _check_headers(self, capacity, batch_size):
        mm, rel = self._mm, self._rel
        magic, version, *_ = P.SEG_HEADER.unpack_from(mm)
        if magic != P.MAGIC_BATCH_RING or version != P.LAYOUT_VERSION:
            raise ProtocolError(
                f"batch ring magic {magic:#x} layout version {version} is "
                f"not the {P.LAYOUT_VERSION} this reader understands",
                errno.EPROTO)
        magic, version, *_ = P.SEG_HEADER.unpack_from(rel)
        if magic != P.MAGIC_RELEASE_PAGE or version != P.LAYOUT_VERSION:
            raise self._bad("release page header")
        (_, _, _, size, cap, bsize, slot, data_off, _, _,
         ncol) = P.BATCH_RING.unpack_from(mm)
        if (size != self.segment_size or cap == 0 or cap & (cap - 1)
                or cap != capacity or bsize != batch_size or bsize == 0
                or slot % 64 or data_off % 4096 or data_off < P.BATCH_RING_SIZE
                or data_off + cap * slot > self.segment_size):
            raise self._bad("geometry")
        self.capacity, self.batch_size = cap, bsize
        self._slot_size, self._data_offset = slot, data_off
        if not P.HEADER_COLUMNS <= ncol <= P.MAX_COLUMNS:
            raise self._bad("column count")
        cols = {}
        for i in range(ncol):
            (raw, code, ndim, *rest) = P.COLUMN_DESC.unpack_from(
                mm, P.BATCH_RING_COLUMNS + i * P.COLUMN_DESC.size)
            shape_all, elem_size, offset = rest[:8], rest[8], rest[10]
            name = P.cstr(raw)
            try:
                dt = _dtype(code)
            except ExpbusError:
                raise self._bad(f"column {i} has unknown dtype {code}") from None
            if not name or name in cols or ndim > 8:
                raise self._bad("column table")
            shape = tuple(shape_all[:ndim])
            n = dt.size
            for d in shape:
                n *= d
            if (n != elem_size or offset % 64
                    or offset < P.BATCH_HEADER_SIZE
                    or offset + elem_size * bsize > slot):
                raise self._bad(f"column table entry {name!r}")
            cols[name] = Column(name, dt, shape, offset, elem_size)
        for name in ("seq", "timestamp", "source", "game", "player", "turn",
                     "flags"):
            if name not in cols:
                raise self._bad(f"header column {name!r} missing")
        self.columns = cols
        try:
            self.schema = parse_schema(self.schema_text)
        except ValueError:
            self.schema = None  # a newer dtype spelling: columns still work

    # -- columns ----------------------------------------------------------

    def _slot_views(self, index):
        """Every column of slot index as a full-length view (batch_size
        rows); a batch slices them to its count. Built once per slot."""
        base = self._data_offset + index * self._slot_size
        views = {}
        mm = self._mm
        for c in self.columns.values():
            if self._use_numpy:
                views[c.name] = _np.ndarray(
                    (self.batch_size,) + c.shape, _np.dtype(c.dtype.numpy),
                    buffer=mm, offset=base + c.offset)
            else:
                views[c.name] = (base + c.offset, c)
        self._views[index] = views
        return views

    def _view(self, index, name, count):
        views = self._views[index] or self._slot_views(index)
        v = views[name]  # KeyError names an unknown column
        if self._use_numpy:
            return v[:count]
        off, c = v
        mv = memoryview(self._mm)[off:off + count * c.elem_size]
        if count == 0:
            return mv.cast(c.dtype.fmt)
        return mv.cast(c.dtype.fmt, (count,) + c.shape)

    # -- the ring ---------------------------------------------------------

    def _ready(self):
        """Batches published and not yet handed out (ring_consumer_ready)."""
        held = len(self._held)
        if self._cached - self._head > held:
            return self._cached - self._head - held
        # Read the tail once into a local and check it is possible: not
        # behind what we saw, not more than a ring ahead of our head.
        tail = self._tail[0]
        if ((tail - self._cached) & _MASK64 > self.capacity
                or (tail - self._head) & _MASK64 > self.capacity):
            raise ProtocolError("the batch ring's tail counter is impossible",
                                errno.EPROTO)
        self._cached = self._head + ((tail - self._head) & _MASK64)
        return self._cached - self._head - held

    def _wait(self, timeout):
        """Sleeps until a batch is ready (True) or timeout passes (False).

        ring.c's protocol: raise our sleeping flag, fence, look at the tail
        once more, then block on the eventfd the broker writes when it
        publishes and sees the flag. The fence makes it exact on x86-64;
        still, no wait is longer than _SLICE_S: if a wakeup were ever lost
        (a CPU without total store order, where Python cannot order the
        flag store before the tail load), it would cost one slice, not a
        hang. Each slice re-raises the flag and re-checks the tail, and
        a signal (Ctrl-C) interrupts poll and raises at once."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._sleeping[0] = 1
            try:
                _fence()
                if self._ready():
                    return True
                if self._gone:
                    raise BrokerGone("the broker has gone away", errno.EPIPE)
                wait = _SLICE_S
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    wait = min(wait, left)
                events = self._poll.poll(wait * 1000.0)
            finally:
                self._sleeping[0] = 0
            for fd, ev in events:
                if fd == self._event_fd:
                    try:
                        os.read(fd, 8)
                    except BlockingIOError:
                        pass
                elif ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR
                           | select.POLLNVAL):
                    # Batches already published stay readable: loop once
                    # more to hand them out before saying so.
                    self._gone = True

    def next_batch(self, timeout=None):
        """The next batch, waiting up to timeout seconds (None: for ever,
        0: not at all); None when none came. Raises BrokerGone once the
        broker has gone and every batch it published was handed out."""
        if self.closed:
            raise ExpbusError("the subscription is closed", errno.EBADF)
        if len(self._held) >= self.capacity:
            raise ExpbusError(
                f"all {self.capacity} batch slots are held: release a batch "
                "(or subscribe with a larger batch_slots) before asking for "
                "the next", errno.ENOBUFS)
        if not self._ready():
            if timeout == 0 or not self._wait(timeout):
                return None
        pos = self._head + len(self._held)
        index = pos & (self.capacity - 1)
        off = self._data_offset + index * self._slot_size
        seq, count, reason, checksum, dropped, publish = \
            P.BATCH_HEADER.unpack_from(self._mm, off)
        if count > self.batch_size:
            raise ProtocolError(f"batch {seq} claims {count} records, more "
                                f"than {self.batch_size}", errno.EPROTO)
        b = Batch(self, index, seq, count, reason, checksum, dropped, publish)
        self._held.append(b)
        return b

    @property
    def dropped(self):
        """Records lost to a full ring (lossy policy) so far, kept current
        by the broker even while no batch is published."""
        if self.closed or getattr(self, "_dropped_mv", None) is None:
            return getattr(self, "_last_dropped", 0)
        return self._dropped_mv[0]

    def _release(self, batch):
        held = self._held
        n = 0
        for n, b in enumerate(held, 1):
            if b is batch:
                break
        else:
            raise ExpbusError("that batch is not held by this subscription",
                              errno.EINVAL)
        for _ in range(n):
            held.popleft()._released = True
        self._head += n
        # Store of the head: a plain aligned store, a store-release on
        # x86-64; our reads of the slots happen before it.
        self._head_mv[0] = self._head & _MASK64
        # Waker half of ring.c's Dekker pattern: order the head store
        # before the load of the broker's sleeping flag.
        _fence()
        if self._prod_sleeping[0]:
            try:
                os.write(self._wake_fd, _ONE)
            except OSError:
                pass  # the broker also wakes on a timer

    @property
    def held(self):
        """Batches handed out and not released."""
        return len(self._held)

    # -- iteration and closing ---------------------------------------------

    def __iter__(self):
        return self

    def __next__(self):
        if self.auto_release and self._last is not None:
            self._last.release()
            self._last = None
        try:
            b = self.next_batch(self.timeout)
        except BrokerGone:
            raise StopIteration from None
        if b is None:
            raise Timeout(f"no batch on '{self.stream}' within "
                          f"{self.timeout} s", errno.ETIMEDOUT)
        self._last = b
        return b

    def close(self):
        """Unsubscribes: the broker reclaims batches still held. Views
        handed out keep their memory mapped until they are dropped."""
        if self.closed:
            return
        mv = getattr(self, "_dropped_mv", None)
        self._last_dropped = mv[0] if mv is not None else 0
        self.closed = True
        for b in self._held:
            b._released = True
        self._held.clear()
        self._views = None
        self._last = None
        for mv in self._mvs:
            mv.release()
        self._mvs = []
        for m in (self._mm, self._rel):
            if m is not None:
                try:
                    m.close()
                except BufferError:
                    pass  # a view is alive: unmapped when it is dropped
        if self._sock is not None:
            self._sock.close()
        for fd in (self._event_fd, self._wake_fd):
            if fd >= 0:
                os.close(fd)
        self._event_fd = self._wake_fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return (f"<expbus.Subscription {self.stream!r} at {self.socket_path}"
                f"{' closed' if self.closed else ''}>")


def subscribe(stream, socket=None, *, batch_size=0, max_delay=None,
              batch_slots=0, games=None, players=None, min_turn=0,
              policy="lossless", group=None, checksum=False, timeout=None,
              auto_release=True, wait=0.0, use_numpy=None):
    """Subscribes to stream at the broker's socket (None: default_socket())
    and returns a Subscription: iterate it for Batch objects.

    batch_size: records per batch (0: the broker's default, 32).
    max_delay: seconds before a partial batch is flushed (None: broker's).
    batch_slots: batches in the ring, a power of two (0: 8).
    games, players: only these ids (None: all); min_turn: turn >= min_turn.
    policy: "lossless" (a full ring holds the producers back) or "lossy"
    (records are dropped for this subscriber only, counted in dropped).
    group: share the records with the other members of this group, every
    game going to one member. checksum: the broker puts an XXH3 of each
    batch in batch.checksum.
    timeout: seconds the iterator waits for a batch before raising
    expbus.Timeout (None: for ever). Iteration ends when the broker goes.
    auto_release: the iterator releases the previous batch when it moves on.
    wait: seconds to retry while the broker or the stream is not there yet.
    use_numpy: None: numpy arrays when numpy imports; False: memoryviews.

    Raises BrokerRefused with the broker's message, BrokerGone when no
    broker listens, ProtocolError when what it sent is not valid."""
    return Subscription(stream, socket, batch_size=batch_size,
                        max_delay=max_delay, batch_slots=batch_slots,
                        games=games, players=players, min_turn=min_turn,
                        policy=policy, group=group, checksum=checksum,
                        timeout=timeout, auto_release=auto_release, wait=wait,
                        use_numpy=use_numpy)
