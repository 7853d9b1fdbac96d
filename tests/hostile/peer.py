"""peer.py — a hostile (or careless) peer in Python: the control protocol
spoken raw (socket + SCM_RIGHTS + mmap), so that it can send what the C
library never would: rings of its own making, empty messages with fds,
requests it never finishes. Layouts follow docs/protocol.md; constants
come from python/expbus/_proto.py."""
import array
import errno
import fcntl
import mmap
import os
import socket
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
from expbus import _proto as P  # noqa: E402

MSG_ATTACH_S = struct.Struct("<IHHII64sIIII")  # struct msg_attach
MSG_OK_ATTACH_S = struct.Struct("<IHHIIIIIIQQII")  # struct msg_ok_attach
ATTACH_RESUME = 1
ATTACH_READY = 2
READY_SET_SIZE = 4096
F_ADD_SEALS = 1033
MFD_ALLOW_SEALING = 2
# struct producer_ring: seg_header, capacity, slot_size, data_size,
# producer_id, schema_hash, data_offset; prod side at 64, cons at 128
RING_HEADER = struct.Struct("<IHHQIIIIQQ")
RING_PROD = 64
RING_CONS = 128
RING_DATA = 256
RECORD_HEADER_SIZE = 32


class Refused(Exception):
    def __init__(self, err, text):
        super().__init__(f"{errno.errorcode.get(err, err)}: {text}")
        self.errno = err
        self.text = text


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    return s


def send(sock, msg, fds=()):
    anc = []
    if fds:
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                array.array("i", fds).tobytes())]
    return sock.sendmsg([msg], anc)


def recv(sock, timeout=10.0):
    """One message and its fds; (b"", []) on hang-up."""
    sock.settimeout(timeout)
    fds = array.array("i")
    msg, anc, _flags, _addr = sock.recvmsg(
        P.PROTO_MAX_MSG, socket.CMSG_SPACE(8 * fds.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return msg, list(fds)


def reply(sock, want, timeout=10.0):
    msg, fds = recv(sock, timeout)
    if not msg:
        raise ConnectionResetError("broker hung up")
    mtype = P.check_header(msg)
    if mtype == P.MSG_ERROR:
        for fd in fds:
            os.close(fd)
        raise Refused(*P.error_reply(msg))
    assert mtype == want, f"reply type {mtype:#x}, wanted {want:#x}"
    return msg, fds


def attach_request(stream, schema, ring_slots=0, flags=0):
    text = schema.encode()
    return MSG_ATTACH_S.pack(P.PROTO_MAGIC, P.PROTO_VERSION, P.MSG_ATTACH,
                             MSG_ATTACH_S.size + len(text), 0,
                             stream.encode(), ring_slots, flags, len(text),
                             0) + text


def stats_request():
    return P.header(P.MSG_STATS, 16)


class Attached:
    """A producer attached with the raw protocol: its socket, reply fields
    and fds (ring, broker wakeup, space eventfd) and the ring mapped
    writable."""

    def __init__(self, path, stream, schema, ring_slots=0, resume_fd=None,
                 flags=0):
        self.sock = connect(path)
        if resume_fd is not None:
            flags |= ATTACH_RESUME
        send(self.sock, attach_request(stream, schema, ring_slots, flags),
             [resume_fd] if resume_fd is not None else [])
        try:
            msg, self.fds = reply(self.sock, P.MSG_OK_ATTACH)
        except BaseException:
            self.sock.close()
            raise
        (*_, self.id, self.capacity, self.slot_size, self.data_size,
         self.segment_size, self.schema_hash, self.ready_bit,
         _pad) = MSG_OK_ATTACH_S.unpack(
            msg)
        self.ring = mmap.mmap(self.fds[0], self.segment_size,
                              mmap.MAP_SHARED,
                              mmap.PROT_READ | mmap.PROT_WRITE)

    def close(self):
        self.ring.close()
        for fd in self.fds:
            os.close(fd)
        self.sock.close()


def subscribe(path, stream, **kw):
    """A subscription with the raw protocol: (sock, reply, fds) where fds
    are the batch ring, release page, batch eventfd, broker wakeup."""
    sock = connect(path)
    req = P.subscribe_request(
        stream.encode(), kw.get("group", "").encode(),
        kw.get("batch_size", 0), kw.get("max_delay_us", 0),
        kw.get("batch_slots", 0), kw.get("policy", 0), 0, 0, (), ())
    send(sock, req)
    msg, fds = reply(sock, P.MSG_OK_SUBSCRIBE)
    return sock, msg, fds


def make_ring(capacity, slot_size, data_size, schema_hash, head=0, tail=0,
              size=None, seals=P.SEALS_SHARED):
    """A producer ring of our own making (a sealed memfd), mapped: what a
    resuming producer hands the broker, here forged. Returns (fd, map)."""
    size = size or RING_DATA + capacity * slot_size
    fd = os.memfd_create("forged-ring", os.MFD_CLOEXEC | MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    RING_HEADER.pack_into(m, 0, P.MAGIC_PRODUCER_RING, P.LAYOUT_VERSION,
                          RING_DATA, size, capacity, slot_size, data_size, 0,
                          schema_hash, RING_DATA)
    struct.pack_into("<Q", m, RING_PROD, tail)
    struct.pack_into("<Q", m, RING_CONS, head)
    fcntl.fcntl(fd, F_ADD_SEALS, seals)
    return fd, m


# -- hostile programs, one per behaviour: `peer.py MODE SOCKET STREAM SECS`.
# Each prints what happened and exits 0 once the broker disconnected it
# (the outcome the suite wants), 3 when the broker never did.

DEFAULT_SCHEMA = "obs f32[8,8]; action i32; reward f32"  # expbus pub's


def hung_up(sock):
    """True once the broker closed sock (without blocking)."""
    import select
    p = select.poll()
    p.register(sock, select.POLLIN)
    if not p.poll(0):
        return False
    try:
        return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
    except (BlockingIOError, socket.timeout):
        return False
    except OSError:
        return True


def poke(fd):
    try:
        os.write(fd, struct.pack("<Q", 1))
    except OSError:
        pass


def scribble_ring(path, stream, secs):
    """A producer writing random bytes into every writable byte of its ring,
    header included, and ringing the broker's bell after each pass."""
    import time
    p = Attached(path, stream, DEFAULT_SCHEMA, ring_slots=64)
    end = time.monotonic() + secs
    while time.monotonic() < end:
        p.ring[:] = os.urandom(len(p.ring))
        poke(p.fds[1])
        if hung_up(p.sock):
            print("disconnected")
            return 0
        time.sleep(0.001)
    return 3


def scribble_ready(path, stream, secs):
    """A producer that asks for a ready set (ATTACH_READY) and writes
    random bytes over all of it, header and every producer's bit, ringing
    its bell now and then. That is allowed (a bit is a hint): it is not
    disconnected, and the others' records are late at most."""
    import time
    p = Attached(path, stream, DEFAULT_SCHEMA, ring_slots=64,
                 flags=ATTACH_READY)
    if len(p.fds) != 4:
        print(f"no ready set: {len(p.fds)} fds")
        return 4
    ready = mmap.mmap(p.fds[3], READY_SET_SIZE, mmap.MAP_SHARED,
                      mmap.PROT_READ | mmap.PROT_WRITE)
    end = time.monotonic() + secs
    n = 0
    while time.monotonic() < end:
        ready[:] = os.urandom(len(ready))
        n += 1
        if n % 16 == 0:
            poke(p.fds[1])
        if hung_up(p.sock):
            print("disconnected")
            return 3
        time.sleep(0.001)
    print(f"scribbled {n} times")
    ready.close()
    p.close()
    return 0


def scribble_release(path, stream, secs):
    """A subscriber writing random bytes into its release page."""
    import time
    sock, _msg, fds = subscribe(path, stream, batch_size=4, max_delay_us=1000)
    rel = mmap.mmap(fds[1], P.RELEASE_PAGE_SIZE, mmap.MAP_SHARED,
                    mmap.PROT_READ | mmap.PROT_WRITE)
    end = time.monotonic() + secs
    while time.monotonic() < end:
        rel[:] = os.urandom(len(rel))
        poke(fds[3])
        if hung_up(sock):
            print("disconnected")
            return 0
        time.sleep(0.001)
    return 3


def resume_race(path, stream, secs):
    """Hands the broker rings of its own making with ATTACH_RESUME while a
    child process keeps changing their header and counters: whatever the
    broker validated must be what it uses. Every try ends in a refusal or
    (once the garbage shows) a disconnect; the broker must live through
    all of them."""
    import random
    import time
    honest = Attached(path, stream, DEFAULT_SCHEMA, ring_slots=64)
    cap, slot, data, h = (honest.capacity, honest.slot_size,
                          honest.data_size, honest.schema_hash)
    honest.close()
    end = time.monotonic() + secs
    tries = refused = adopted = 0
    while time.monotonic() < end:
        fd, m = make_ring(cap, slot, data, h, head=0, tail=cap // 2)
        child = os.fork()
        if child == 0:  # the racer: flip fields between valid and not
            rnd = random.Random(tries)
            good = bytes(m[:RING_DATA])
            try:
                while True:
                    if rnd.random() < 0.5:
                        m[:RING_DATA] = good
                    else:
                        off = rnd.choice((16, 20, 24, 40, 64, 128))
                        m[off:off + 8] = os.urandom(8)
            finally:
                os._exit(0)
        tries += 1
        time.sleep(0.005)  # the racer is flipping by now
        try:
            a = Attached(path, stream, DEFAULT_SCHEMA, resume_fd=fd)
            adopted += 1
            poke(a.fds[1])
            time.sleep(0.02)
            a.close()
        except Refused:
            refused += 1
        except (ConnectionError, OSError):
            refused += 1
        os.kill(child, 9)
        os.waitpid(child, 0)
        m.close()
        os.close(fd)
    print(f"tries {tries} refused {refused} adopted {adopted}")
    return 0


def thief(path, stream, secs):
    """Reads every eventfd it was given, as fast as it can: the broker's
    and other peers' wakeups must not be among them."""
    import select
    import time
    p = Attached(path, stream, DEFAULT_SCHEMA, ring_slots=64)
    sock, _msg, sfds = subscribe(path, stream, batch_size=1024,
                                 max_delay_us=60000000)
    fds = [p.fds[1], p.fds[2], sfds[2], sfds[3]]
    for fd in fds:
        os.set_blocking(fd, False)
    stolen = 0
    end = time.monotonic() + secs
    while time.monotonic() < end:
        select.select(fds, [], [], 0.05)
        for fd in fds:
            try:
                os.read(fd, 8)
                stolen += 1
            except BlockingIOError:
                pass
    print(f"read {stolen} wakeups")
    return 0


MODES = {"scribble-ring": scribble_ring, "scribble-release": scribble_release,
         "scribble-ready": scribble_ready,
         "resume-race": resume_race, "thief": thief}

if __name__ == "__main__":
    mode, path, stream, secs = sys.argv[1:5]
    sys.exit(MODES[mode](path, stream, float(secs)))
