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


def _random_batch(rng, ncols=None):
    """A random ExperienceBatch as the bridge could send it: any number of
    columns (none, empty ones, lz4-compressed ones), scalars up to their
    type's limits, unicode names."""
    import lz4.block

    def u(bits):
        return rng.choice([0, 1, 127, 128, 16383, 16384,
                           (1 << bits) - 1, rng.getrandbits(bits)])

    count = rng.choice([0, 1, 3, 32, 1000])
    m = pb.ExperienceBatch(schema_hash=u(64), count=count, position=u(64),
                           seq=u(64), flush_reason=rng.randrange(4),
                           dropped_total=u(64), lost_total=u(64),
                           publish_ns=u(64))
    if rng.random() < 0.3:
        m.subscription_id = "sub-" + "".join(
            rng.choice("abcé€😀") for _ in range(rng.randrange(40)))
    if rng.random() < 0.3:
        m.schema = "x u8[4]\n" * rng.randrange(300)
    for k in range(rng.randrange(12) if ncols is None else ncols):
        elem = rng.choice([0, 1, 4, 8, 100, 16352])
        n = count if rng.random() < 0.9 else 0  # an empty column
        raw = bytes(rng.getrandbits(8) for _ in range(min(n * elem, 64))) \
            * (n * elem // 64 + 1)
        raw = raw[:n * elem]
        lz = rng.random() < 0.5 and raw
        m.columns.add(name=f"c{k}" + "é" * rng.randrange(3),
                      dtype=rng.choice(["u8", "f32", "u64", ""]),
                      shape=[u(32) for _ in range(rng.randrange(4))],
                      elem_size=elem,
                      data=lz4.block.compress(raw, store_size=False)
                      if lz else raw,
                      compression=1 if lz else 0,
                      uncompressed_size=len(raw), xxh3=u(64))
    return m


def test_random_batches_match_protobuf():
    import random

    import lz4.block
    rng = random.Random(1)
    for _ in range(300):
        m = _random_batch(rng)
        raw = m.SerializeToString()
        w = decode_batch(raw)
        same(w, pb.ExperienceBatch.FromString(raw))
        for c in w.columns:
            if c.compression == 1:
                assert len(lz4.block.decompress(
                    c.data, uncompressed_size=c.uncompressed_size)) \
                    == c.uncompressed_size
        # the per-send tail the bridge appends, and a batch without columns
        tail = pb.ExperienceBatch(subscription_id="t", dropped_total=1)
        raw2 = raw + tail.SerializeToString()
        same(decode_batch(raw2), pb.ExperienceBatch.FromString(raw2))
    same(decode_batch(b""), pb.ExperienceBatch.FromString(b""))


def test_data_is_a_view_of_the_message():
    m = _random_batch(__import__("random").Random(2), ncols=3)
    m.count = 4
    for c in m.columns:
        c.data, c.compression = b"abcd" * 4, 0
    raw = m.SerializeToString()
    w = decode_batch(raw)
    for c in w.columns:
        assert isinstance(c.data, memoryview) and c.data.obj is raw


def test_mutated_bytes_fuzz():
    """Random flips, cuts and insertions: the decoder raises WireError and
    nothing else, and whenever protobuf accepts the bytes too, both read
    the same fields."""
    import random
    import warnings

    from google.protobuf.message import DecodeError
    rng = random.Random(3)
    agreed = failed = 0
    for it in range(3000):
        raw = bytearray(_random_batch(rng, ncols=rng.randrange(3))
                        .SerializeToString())
        for _ in range(rng.randrange(1, 4)):
            op = rng.randrange(4)
            at = rng.randrange(len(raw) + 1)
            if op == 0 and raw:
                raw[min(at, len(raw) - 1)] = rng.getrandbits(8)
            elif op == 1:
                del raw[at:]
            elif op == 2:
                raw[at:at] = bytes(rng.getrandbits(8)
                                   for _ in range(rng.randrange(1, 12)))
            else:
                del raw[at:at + rng.randrange(1, 8)]
        raw = bytes(raw)
        try:
            w = decode_batch(raw)
        except WireError:
            failed += 1
            continue
        try:
            with warnings.catch_warnings():
                # "Not all data was converted": protobuf stopped early
                warnings.simplefilter("error")
                p = pb.ExperienceBatch.FromString(raw)
        except (DecodeError, RuntimeWarning):
            continue  # the hand decoder is allowed to be more lenient
        same(w, p)
        agreed += 1
    assert agreed > 300 and failed > 300, (agreed, failed)
