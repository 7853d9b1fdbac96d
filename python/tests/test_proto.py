"""The reader against a fake broker: it sends what proto.h says, and refuses
replies and segments that are not what they claim, with a message."""
import fcntl
import os
import socket
import struct
import threading

import pytest

import expbus
from expbus import _proto as P


class FakeBroker:
    """Answers one request with reply(request) -> (bytes, fds)."""

    def __init__(self, tmp_path, reply):
        self.path = str(tmp_path / "fake.sock")
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.srv.bind(self.path)
        self.srv.listen(1)
        self.request = None
        self.reply = reply
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.srv.accept()
        with conn:
            self.request = conn.recv(65536)
            msg, fds = self.reply(self.request)
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                    struct.pack(f"{len(fds)}i", *fds))] if fds else []
            conn.sendmsg([msg], anc)
            for fd in fds:
                os.close(fd)
            conn.recv(1)  # until the client hangs up

    def close(self):
        self.thread.join(5)
        self.srv.close()


def memfd(size, seals, magic=P.MAGIC_BATCH_RING, version=P.LAYOUT_VERSION):
    fd = os.memfd_create("fake", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
    os.ftruncate(fd, size)
    os.pwrite(fd, P.SEG_HEADER.pack(magic, version, 0, size), 0)
    if seals:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


def ok_subscribe(size, capacity=8, batch_size=32, schema=b"x u8"):
    return P.MSG_OK_SUBSCRIBE_S.pack(
        P.PROTO_MAGIC, P.PROTO_VERSION, P.MSG_OK_SUBSCRIBE,
        P.MSG_OK_SUBSCRIBE_S.size + len(schema), 0, 1, capacity, size, 0,
        len(schema), batch_size) + schema


def four_fds(ring_seals=P.SEALS_READONLY, magic=P.MAGIC_BATCH_RING,
             version=P.LAYOUT_VERSION, size=1 << 16):
    return [memfd(size, ring_seals, magic, version),
            memfd(P.RELEASE_PAGE_SIZE, P.SEALS_SHARED, P.MAGIC_RELEASE_PAGE),
            os.eventfd(0), os.eventfd(0)]


def run(tmp_path, reply, **kw):
    fake = FakeBroker(tmp_path, reply)
    try:
        with expbus.subscribe("s", fake.path, **kw):
            pass
    finally:
        fake.close()
    return fake


def test_struct_sizes_match_the_c_headers():
    assert P.MSG_SUBSCRIBE_S.size == 176 and P.MSG_OK_SUBSCRIBE_S.size == 48
    assert P.COLUMN_DESC.size == 120 and P.BATCH_RING.size == 56
    assert P.BATCH_HEADER.size <= P.BATCH_HEADER_SIZE == 64
    assert P.RECORD_HEADER.size == 32


def test_request_carries_every_option(tmp_path):
    def reply(req):
        err = b"no"
        return P.MSG_ERROR_S.pack(P.PROTO_MAGIC, 1, P.MSG_ERROR,
                                  24 + len(err), 0, 2, len(err)) + err, []
    with pytest.raises(expbus.BrokerRefused, match="broker refused: no"):
        fake = FakeBroker(tmp_path, reply)
        try:
            expbus.subscribe("s", fake.path, batch_size=7, max_delay=0.25,
                             batch_slots=16, games=[5, 3, 3], players=[9],
                             min_turn=4, policy="lossy", group="g",
                             checksum=True)
        finally:
            fake.close()
    req = fake.request
    f = P.MSG_SUBSCRIBE_S.unpack_from(req)
    assert f[:5] == (P.PROTO_MAGIC, 1, P.MSG_SUBSCRIBE, len(req), 0)
    assert f[5].rstrip(b"\0") == b"s" and f[6].rstrip(b"\0") == b"g"
    assert f[7:] == (7, 250000, 16, P.LOSSY, 4, 1, 2, 1)
    assert struct.unpack_from("<3I", req, 176) == (3, 5, 9)


def test_other_protocol_version_is_refused_by_name(tmp_path):
    def reply(req):
        return P.MSG_HEADER.pack(P.PROTO_MAGIC, 2, P.MSG_OK_SUBSCRIBE, 16, 0), []
    with pytest.raises(expbus.ProtocolError, match="protocol version 2 is not"):
        run(tmp_path, reply)


def test_bad_magic_is_refused(tmp_path):
    def reply(req):
        return P.MSG_HEADER.pack(0x1234, 1, P.MSG_OK_SUBSCRIBE, 16, 0), []
    with pytest.raises(expbus.ProtocolError, match="not an expbus message"):
        run(tmp_path, reply)


def test_unsealed_segment_is_refused(tmp_path):
    def reply(req):
        return ok_subscribe(1 << 16), four_fds(ring_seals=P.SEALS_SHARED)
    with pytest.raises(expbus.ProtocolError, match="lacks seals"):
        run(tmp_path, reply)


def test_segment_of_another_size_is_refused(tmp_path):
    def reply(req):
        return ok_subscribe(1 << 17), four_fds()
    with pytest.raises(expbus.ProtocolError, match="announced"):
        run(tmp_path, reply)


def test_other_layout_version_is_refused_by_name(tmp_path):
    def reply(req):
        return ok_subscribe(1 << 16), four_fds(version=9)
    with pytest.raises(expbus.ProtocolError, match="layout version 9"):
        run(tmp_path, reply)


def test_bad_geometry_is_refused(tmp_path):
    def reply(req):  # right magic and version, all-zero geometry
        return ok_subscribe(1 << 16), four_fds()
    with pytest.raises(expbus.ProtocolError, match="geometry"):
        run(tmp_path, reply)


def test_fds_are_closed_after_a_refusal(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(expbus.ProtocolError):
            run(tmp_path / "..", lambda r: (ok_subscribe(1 << 16),
                                            four_fds(version=9)))
        os.unlink(str(tmp_path / ".." / "fake.sock"))
    assert len(os.listdir("/proc/self/fd")) <= before
