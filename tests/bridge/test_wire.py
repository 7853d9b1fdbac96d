"""python/expbus/_wire.py decodes what protobuf decodes: same fields from
the same bytes, including the bridge's concatenated per-send tail, padded
(5-byte) length varints, packed shapes and unknown fields; and
expbus_pb2.py is what protoc makes of proto/expbus.proto today."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from expbus import expbus_pb2 as pb
from expbus._wire import WireError, decode_batch

ROOT = Path(__file__).resolve().parents[2]


def sample():
    m = pb.ExperienceBatch(schema_hash=0xFEDCBA9876543210, count=3,
                           position=1 << 40, seq=7, flush_reason=2,
                           publish_ns=123456789, dropped_total=4)
    for name, elem in (("seq", 8), ("obs", 12)):
        m.columns.add(name=name, dtype="u8", shape=[3, 4], elem_size=elem,
                      data=os.urandom(3 * elem), compression=0,
                      uncompressed_size=3 * elem, xxh3=0xAAAABBBBCCCCDDDD)
    return m


def same(w, m):
    for f in ("subscription_id", "schema_hash", "count", "position", "seq",
              "flush_reason", "dropped_total", "lost_total", "publish_ns",
              "schema"):
        assert getattr(w, f) == getattr(m, f), f
    assert len(w.columns) == len(m.columns)
    for a, b in zip(w.columns, m.columns):
        for f in ("name", "dtype", "elem_size", "compression",
                  "uncompressed_size", "xxh3"):
            assert getattr(a, f) == getattr(b, f), f
        assert list(a.shape) == list(b.shape)
        assert bytes(a.data) == b.data


def test_decode_matches_protobuf():
    m = sample()
    raw = m.SerializeToString()
    same(decode_batch(raw), pb.ExperienceBatch.FromString(raw))
    # The bridge appends per-send fields: the last value wins.
    tail = pb.ExperienceBatch(subscription_id="abc", schema="x u8",
                              dropped_total=9, lost_total=5)
    raw2 = raw + tail.SerializeToString()
    w, p = decode_batch(raw2), pb.ExperienceBatch.FromString(raw2)
    same(w, p)
    assert w.dropped_total == 9 and w.subscription_id == "abc"


def test_padded_lengths_and_unknown_fields():
    # A column written as the bridge writes it: lengths as 5-byte varints.
    data = b"0123456789ab"
    col = (b"\x0a\x03obs" + b"\x2a" + bytes([len(data) | 0x80, 0x80, 0x80,
                                               0x80, 0x00]) + data
           + b"\x20\x04" + b"\x98\x06\x01")  # + unknown field 99
    raw = b"\x52" + bytes([len(col) | 0x80, 0x80, 0x80, 0x80, 0]) + col \
        + b"\x18\x03"
    w, p = decode_batch(raw), pb.ExperienceBatch.FromString(raw)
    same(w, p)
    assert bytes(w.columns[0].data) == data
    with pytest.raises(WireError):
        decode_batch(raw[:-5])


@pytest.mark.skipif(not shutil.which("protoc"), reason="no protoc")
def test_generated_python_is_current(tmp_path):
    subprocess.run(["protoc", f"--proto_path={ROOT / 'proto'}",
                    f"--python_out={tmp_path}", str(ROOT / "proto" /
                                                    "expbus.proto")],
                   check=True, timeout=60)
    assert (tmp_path / "expbus_pb2.py").read_bytes() == \
        (ROOT / "python" / "expbus" / "expbus_pb2.py").read_bytes(), \
        "regenerate: protoc --proto_path=proto --python_out=python/expbus " \
        "proto/expbus.proto"
