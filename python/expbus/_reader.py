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

from . import _atomic
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

Column = collections.namedtuple("Column", "name dtype shape offset elem_size")
Column.__doc__ = """A column of every batch: name, expbus DType, shape of
one row, byte offset in a batch slot, bytes per row."""


class Batch:
    """One batch, read in place. batch["obs"] is a read-only view of the
    batch ring, [count, *shape]; valid until the batch is released (by
    release(), leaving a `with batch:` block, releasing a later batch, or,
    with auto_release, the iterator moving on). Copy what you keep."""

    __slots__ = ("_sub", "_ring", "_index", "seq", "count", "flush_reason",
                 "checksum", "dropped_total", "publish_ns", "_released",
                 "_private")

    def __init__(self, sub, ring, index, seq, count, flush_reason, checksum,
                 dropped_total, publish_ns):
        self._sub = sub
        self._ring = ring  # the broker's mapping it lives in (_Ring)
        self._private = None  # a copy without records delivered before
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
        if self._private is not None:
            return self._private[name]
        return self._ring.view(self._index, name, self.count)

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def keys(self):
        """Column names: header columns (seq, timestamp, source, game,
        player, turn, flags), then the schema's fields."""
        return self._ring.columns.keys()

    def __contains__(self, name):
        return name in self._ring.columns

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


class _Ring:
    """One subscription as one broker gave it: the batch ring and release
    page mapped, the connection, the batches handed out. A Subscription
    keeps an old _Ring mapped while batches of it are held, after its
    broker went away (consumer.c's struct generation)."""

    def __init__(self, sub, sock, msg, fds):
        self.sub = sub
        self.sock = sock
        self.mm = self.rel = None
        self.event_fd, self.wake_fd = fds[2], fds[3]
        self.counters = []
        self.held = collections.deque()
        self.gone = False
        self.views = None
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
        self.mm = mm = _map(fds[0], seg_size, False)
        self.rel = rel = _map(fds[1], P.RELEASE_PAGE_SIZE, True)
        self.segment_size = seg_size
        self._check_headers(capacity, batch_size)

        # The shared counters with the memory order ring.c gives them
        # (_atomic.py: libexpbus's acquire/release, or plain accesses on
        # x86-64 only). The sleeping flags are relaxed in ring.c: a native
        # aligned 4-byte memoryview item is one whole load or store.
        at = sub._atomics
        prod = P.BATCH_RING_PROD
        cons = P.RELEASE_PAGE_CONS
        self.tail = at.counter(mm, prod)     # load-acquire: broker's tail
        self.head = at.counter(rel, cons)    # store-release: our head
        self.dropped = at.counter(mm, P.BATCH_RING_DROPPED)
        self.prod_sleeping = memoryview(mm)[prod + 8:prod + 12].cast("I")
        self.sleeping = memoryview(rel)[cons + 8:cons + 12].cast("I")
        self.counters = [self.tail, self.head, self.dropped]
        self.mvs = [self.prod_sleeping, self.sleeping]
        self.head_pos = self.head.load()
        self.cached = self.tail.load()
        if (self.cached - self.head_pos) & _MASK64 > self.capacity:
            raise ProtocolError("the batch ring's tail counter is impossible",
                                errno.EPROTO)
        self.poll = select.poll()
        self.poll.register(self.event_fd, select.POLLIN)
        self.poll.register(self.sock.fileno(), select.POLLRDHUP)
        self.views = [None] * self.capacity

    def _bad(self, what):
        return ProtocolError(f"the batch ring from the broker is invalid: "
                             f"{what}", errno.EPROTO)

    def _check_headers(self, capacity, batch_size):
        mm, rel = self.mm, self.rel
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
        self.slot_size, self.data_offset = slot, data_off
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
        if cols["seq"].elem_size != 8 or cols["source"].elem_size != 4:
            raise self._bad("seq must be u64 and source u32")
        self.columns = cols

    # -- columns ----------------------------------------------------------

    def _slot_views(self, index):
        """Every column of slot index as a full-length view (batch_size
        rows); a batch slices them to its count. Built once per slot."""
        base = self.data_offset + index * self.slot_size
        views = {}
        mm = self.mm
        for c in self.columns.values():
            if self.sub._use_numpy:
                views[c.name] = _np.ndarray(
                    (self.batch_size,) + c.shape, _np.dtype(c.dtype.numpy),
                    buffer=mm, offset=base + c.offset)
            else:
                views[c.name] = (base + c.offset, c)
        self.views[index] = views
        return views

    def view(self, index, name, count):
        views = self.views[index] or self._slot_views(index)
        v = views[name]  # KeyError names an unknown column
        if self.sub._use_numpy:
            return v[:count]
        off, c = v
        mv = memoryview(self.mm)[off:off + count * c.elem_size]
        if count == 0:
            return mv.cast(c.dtype.fmt)
        return mv.cast(c.dtype.fmt, (count,) + c.shape)

    # -- the ring ---------------------------------------------------------

    def ready(self):
        """Batches published and not yet handed out (ring_consumer_ready)."""
        held = len(self.held)
        if self.cached - self.head_pos > held:
            return self.cached - self.head_pos - held
        # Read the tail once into a local and check it is possible: not
        # behind what we saw, not more than a ring ahead of our head.
        tail = self.tail.load()
        if ((tail - self.cached) & _MASK64 > self.capacity
                or (tail - self.head_pos) & _MASK64 > self.capacity):
            raise ProtocolError("the batch ring's tail counter is impossible",
                                errno.EPROTO)
        self.cached = self.head_pos + ((tail - self.head_pos) & _MASK64)
        return self.cached - self.head_pos - held

    def wait(self, deadline):
        """Sleeps until a batch is ready (True), deadline passes (False) or
        the broker hung up (self.gone, False).

        ring.c's protocol: raise our sleeping flag, fence, look at the tail
        once more, then block on the eventfd the broker writes when it
        publishes and sees the flag. No wait is longer than _SLICE_S, so a
        signal (Ctrl-C) is seen soon."""
        while True:
            self.sleeping[0] = 1
            try:
                self.sub._atomics.fence()
                if self.ready():
                    return True
                if self.gone:
                    return False
                wait = _SLICE_S
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    wait = min(wait, left)
                events = self.poll.poll(wait * 1000.0)
            finally:
                self.sleeping[0] = 0
            for fd, ev in events:
                if fd == self.event_fd:
                    try:
                        os.read(fd, 8)
                    except BlockingIOError:
                        pass
                elif ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR
                           | select.POLLNVAL):
                    # Batches already published stay readable: loop once
                    # more to hand them out before saying so.
                    self.gone = True

    def hung_up(self):
        ev = self.poll.poll(0)
        for fd, e in ev:
            if fd != self.event_fd and e & (select.POLLRDHUP | select.POLLHUP
                                            | select.POLLERR | select.POLLNVAL):
                self.gone = True
        return self.gone

    def release(self, n):
        """Gives back the oldest n held batches (head += n)."""
        for _ in range(n):
            self.held.popleft()._released = True
        self.head_pos += n
        # Store-release of the head: our reads of the slots happen before.
        self.head.store(self.head_pos & _MASK64)
        # Waker half of ring.c's Dekker pattern: order the head store
        # before the load of the broker's sleeping flag.
        self.sub._atomics.fence()
        if not self.gone and self.prod_sleeping[0]:
            try:
                os.write(self.wake_fd, _ONE)
            except OSError:
                pass  # the broker also wakes on a timer

    def close(self):
        for b in self.held:
            b._released = True
        self.held.clear()
        self.views = None
        for c in self.counters:
            c.release()
        for mv in getattr(self, "mvs", []):
            mv.release()
        self.counters = self.mvs = []
        for m in (self.mm, self.rel):
            if m is not None:
                try:
                    m.close()
                except BufferError:
                    pass  # a view is alive: unmapped when it is dropped
        if self.sock is not None:
            self.sock.close()
        for fd in (self.event_fd, self.wake_fd):
            if fd >= 0:
                os.close(fd)
        self.event_fd = self.wake_fd = -1


class _Seen:
    """What earlier brokers delivered, per producer (dedup.c's rule): a
    record (source, seq) from the current broker is a duplicate when seq is
    below the floor, one past the highest seq of source delivered before
    the current broker took over."""

    def __init__(self):
        self.next = {}   # source -> one past the highest seq delivered
        self.floor = {}  # next as of the last new_broker()

    def new_broker(self):
        self.floor = dict(self.next)

    def keep(self, src, seq):
        """The records of a batch to hand out: None for all, else a list
        (numpy: a boolean array) of which; records them as delivered."""
        n = len(src)
        if n == 0:
            return None
        nxt, floor = self.next, self.floor
        if _np is not None and isinstance(src, _np.ndarray):
            if (src == src[0]).all():  # one producer: the common case
                u, top = [int(src[0])], [int(seq.max())]
                keep = None
                if floor:
                    keep = seq >= floor.get(u[0], 0)
            else:  # max seq per source: sort by source, reduce runs
                order = _np.argsort(src, kind="stable")
                ss = src[order]
                starts = _np.flatnonzero(_np.r_[True, ss[1:] != ss[:-1]])
                top = _np.maximum.reduceat(seq[order], starts).tolist()
                u = ss[starts].tolist()
                keep = None
                if floor:
                    fl = _np.array([floor.get(x, 0) for x in u], _np.uint64)
                    keep = seq >= fl[_np.searchsorted(ss[starts], src)]
            if keep is not None and keep.all():
                keep = None
            for x, t in zip(u, top):
                if t + 1 > nxt.get(x, 0):
                    nxt[x] = t + 1
            return keep
        keep = [True] * n
        drop = False
        for i in range(n):
            x, q = src[i], seq[i]
            if q < floor.get(x, 0):
                keep[i] = False
                drop = True
            elif q + 1 > nxt.get(x, 0):
                nxt[x] = q + 1
        return keep if drop else None


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
                 auto_release=True, wait=0.0, use_numpy=None,
                 reconnect=30.0, atomics=None):
        self._ring = None   # the current broker's; None while reconnecting
        self._old = []      # gone, with batches still held, oldest first
        self._seen = _Seen()
        self._gone_since = None
        self._dropped_base = 0
        self.closed = False
        self.timeout = timeout
        self.auto_release = auto_release
        self.reconnect = reconnect
        self._last = None
        if use_numpy is None:
            use_numpy = _np is not None
        elif use_numpy and _np is None:
            raise ImportError("use_numpy=True but numpy is not importable")
        self._use_numpy = use_numpy
        self._atomics = atomics or _atomic.default()

        self.stream = stream
        self.socket_path = socket or default_socket()
        sname = P.name_field(stream, "stream")
        gname = P.name_field(group or "", "group", may_be_empty=True)
        delay_us = 0 if max_delay is None else max(1, round(max_delay * 1e6))
        for v, what in ((batch_size, "batch_size"), (batch_slots, "batch_slots"),
                        (delay_us, "max_delay"), (min_turn, "min_turn")):
            if not 0 <= v < 1 << 32:
                raise ValueError(f"{what} out of range: {v}")
        self._req_args = (
            sname, gname, batch_size, delay_us, batch_slots, _policy(policy),
            min_turn, P.SUBSCRIBE_CHECKSUM if checksum else 0,
            _ids(games, "game"), _ids(players, "player"))
        self._req = P.subscribe_request(*self._req_args)
        try:
            self._ring = self._subscribe(wait)
        except BaseException:
            self.close()
            raise
        r = self._ring
        self.subscription_id, self.schema_hash = r.subscription_id, r.schema_hash
        self.schema_text, self.segment_size = r.schema_text, r.segment_size
        self.capacity, self.batch_size = r.capacity, r.batch_size
        self.columns = r.columns
        try:
            self.schema = parse_schema(self.schema_text)
        except ValueError:
            self.schema = None  # a newer dtype spelling: columns still work

    # -- what tests and tools look at ---------------------------------------

    @property
    def _mm(self):
        return self._ring.mm

    @property
    def _data_offset(self):
        return self._ring.data_offset

    @property
    def _slot_size(self):
        return self._ring.slot_size

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

    def _subscribe(self, wait):
        """A _Ring from whichever broker listens, retrying while the broker
        or the stream is not there yet, for wait seconds."""
        deadline = time.monotonic() + wait
        while True:
            sock = None
            try:
                sock = self._connect()
                msg, fds = self._request(sock, self._req)
                break
            except (BrokerGone, BrokerRefused) as e:
                retry = e.errno in (errno.ENOENT, errno.ECONNREFUSED,
                                    errno.EPIPE, errno.ECONNRESET)
                if sock is not None:
                    sock.close()
                if not retry or time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)
        try:
            ring = _Ring(self, sock, msg, fds)
        except BaseException:
            sock.close()
            for fd in fds[2:]:
                os.close(fd)
            raise
        finally:
            for fd in fds[:2]:  # the mappings keep the segments alive
                os.close(fd)
        return ring

    def _request(self, s, req):
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
        try:
            msg, anc, flags, _ = s.recvmsg(
                16384, socket.CMSG_SPACE(4 * 32), socket.MSG_CMSG_CLOEXEC)
        except OSError as e:
            raise BrokerGone(f"reading the broker's reply at "
                             f"{self.socket_path}: {e.strerror}",
                             e.errno) from None
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

    def _resubscribe(self):
        """One try to get the subscription back from a restarted broker;
        True when served again. Refusals other than "not there yet" raise."""
        # The restarted broker holds the stream for as many subscribers as
        # the last one had: this one says it is one of them.
        a = self._req_args
        self._req = P.subscribe_request(*a[:7], a[7] | P.SUBSCRIBE_RESUMING,
                                        *a[8:])
        try:
            ring = self._subscribe(0)
        except (BrokerGone, BrokerRefused) as e:
            if e.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.EPIPE,
                           errno.ECONNRESET):
                return False
            raise
        if ring.schema_text != self.schema_text:
            ring.close()
            raise ProtocolError(
                f"the restarted broker serves stream '{self.stream}' with "
                f"another schema: {ring.schema_text}", errno.EPROTO)
        self._seen.new_broker()
        self._ring = ring
        self.columns = ring.columns
        self._gone_since = None
        return True

    def _retire(self):
        """The current broker went away and all it published was handed
        out: keep its ring while batches of it are held."""
        r = self._ring
        self._ring = None
        self._gone_since = time.monotonic()
        self._dropped_base += r.dropped.load()
        if r.held:
            self._old.append(r)
        else:
            r.close()

    # -- batches ------------------------------------------------------------

    def _take(self, r):
        """The next published batch of r as a Batch, or None when it held
        only records an earlier broker delivered."""
        pos = r.head_pos + len(r.held)
        index = pos & (r.capacity - 1)
        off = r.data_offset + index * r.slot_size
        seq, count, reason, checksum, dropped, publish = \
            P.BATCH_HEADER.unpack_from(r.mm, off)
        if count > r.batch_size:
            raise ProtocolError(f"batch {seq} claims {count} records, more "
                                f"than {r.batch_size}", errno.EPROTO)
        b = Batch(self, r, index, seq, count, reason, checksum,
                  self._dropped_base + dropped, publish)
        r.held.append(b)
        keep = self._seen.keep(r.view(index, "source", count),
                               r.view(index, "seq", count))
        if keep is None:
            return b
        if _np is not None and self._use_numpy:
            n = int(keep.sum())
            private = {k: r.view(index, k, count)[keep].copy()
                       for k in r.columns}
        else:
            n = sum(keep)
            private = {}
            for k in r.columns:
                v = r.view(index, k, count)
                private[k] = [v[i] for i in range(count) if keep[i]]
        if n == 0:
            if len(r.held) == 1:
                r.release(1)  # nothing before it is held: give it back now
            else:
                r.held[-1]._private = {}
            return None
        b._private = private
        b.count = n
        return b

    def next_batch(self, timeout=None):
        """The next batch, waiting up to timeout seconds (None: for ever,
        0: not at all); None when none came. When the broker goes away,
        the batches it published come first; then the subscription is made
        again, with the same options, with the broker restarted on the same
        socket (records an earlier broker delivered are dropped, so each
        record comes once). Raises BrokerGone, naming the socket, when no
        broker took the subscription back within `reconnect` seconds."""
        if self.closed:
            raise ExpbusError("the subscription is closed", errno.EBADF)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            r = self._ring
            if r is not None:
                if len(r.held) >= r.capacity:
                    raise ExpbusError(
                        f"all {r.capacity} batch slots are held: release a "
                        "batch (or subscribe with a larger batch_slots) "
                        "before asking for the next", errno.ENOBUFS)
                if r.ready():
                    b = self._take(r)
                    if b is not None:
                        return b
                    continue
                if not r.gone:
                    if timeout == 0:
                        if not r.hung_up():
                            return None
                    elif not r.wait(deadline) and not r.gone:
                        return None
                    continue
                if self.reconnect is None or self.reconnect <= 0:
                    raise BrokerGone(
                        f"the broker at {self.socket_path} has gone away",
                        errno.EPIPE)
                self._retire()
            if self._resubscribe():
                continue
            now = time.monotonic()
            end = self._gone_since + self.reconnect
            if now >= end:
                raise BrokerGone(
                    f"the broker at {self.socket_path} has gone away and "
                    f"none took the subscription to '{self.stream}' back "
                    f"within {self.reconnect:g} s", errno.EPIPE)
            if timeout == 0:
                return None
            if deadline is not None:
                if now >= deadline:
                    return None
                end = min(end, deadline)
            time.sleep(max(0.0, min(0.005, end - now)))

    @property
    def dropped(self):
        """Records lost to a full ring (lossy policy) so far, over every
        broker that served this subscription, kept current by the broker
        even while no batch is published."""
        if self.closed:
            return getattr(self, "_last_dropped", 0)
        r = self._ring
        return self._dropped_base + (r.dropped.load() if r else 0)

    def _release(self, batch):
        r = batch._ring
        for n, b in enumerate(r.held, 1):
            if b is batch:
                break
        else:
            raise ExpbusError("that batch is not held by this subscription",
                              errno.EINVAL)
        # Every batch received before it goes too: older rings whole.
        while self._old and self._old[0] is not r:
            self._old.pop(0).close()
        r.release(n)
        if r.gone and not r.held and self._old and self._old[0] is r:
            self._old.pop(0).close()

    @property
    def held(self):
        """Batches handed out and not released."""
        return sum(len(r.held) for r in self._old) + (
            len(self._ring.held) if self._ring else 0)

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
        try:
            self._last_dropped = self.dropped
        except Exception:
            self._last_dropped = 0
        self.closed = True
        self._last = None
        for r in self._old + ([self._ring] if self._ring else []):
            r.close()
        self._old = []
        self._ring = None

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
              auto_release=True, wait=0.0, use_numpy=None, reconnect=30.0,
              atomics=None):
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
    expbus.Timeout (None: for ever).
    reconnect: when the broker goes away, seconds to keep subscribing again
    (same options) to a broker restarted on the same socket; batches held
    stay valid meanwhile. Iteration ends (next_batch raises BrokerGone)
    only when none came back in time; 0 or None: at once.
    auto_release: the iterator releases the previous batch when it moves on.
    wait: seconds to retry while the broker or the stream is not there yet.
    use_numpy: None: numpy arrays when numpy imports; False: memoryviews.
    atomics: how shared counters are loaded and stored (expbus._atomic;
    None: libexpbus's acquire/release when it loads, else plain accesses
    on x86-64 only; EXPBUS_PY_ATOMICS=lib|plain forces one).

    Raises BrokerRefused with the broker's message, BrokerGone when no
    broker listens, ProtocolError when what it sent is not valid."""
    return Subscription(stream, socket, batch_size=batch_size,
                        max_delay=max_delay, batch_slots=batch_slots,
                        games=games, players=players, min_turn=min_turn,
                        policy=policy, group=group, checksum=checksum,
                        timeout=timeout, auto_release=auto_release, wait=wait,
                        use_numpy=use_numpy, reconnect=reconnect,
                        atomics=atomics)
