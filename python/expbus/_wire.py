"""_wire.py — ExperienceBatch (proto/expbus.proto) decoded by hand, with
each column's data a zero-copy memoryview of the received bytes.

Why not expbus_pb2.ExperienceBatch.FromString: python3-protobuf's parser
copies every bytes field, at about 0.25 GB/s on the machines we measured
(2 ms for a 512 KiB batch); walking the few dozen fields of a batch here
and slicing the buffer costs tens of microseconds whatever its size.
Unknown fields are skipped, repeated scalar fields take the last value
(protobuf's merge rule, which the bridge relies on: it appends per-send
fields after the batch's own). tests/bridge/test_wire.py checks this
decoder against expbus_pb2 on the same bytes."""

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class WireError(ValueError):
    pass


def _varint(buf, i):
    b = buf[i]
    if b < 0x80:
        return b, i + 1
    result, shift = b & 0x7F, 7
    i += 1
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def _fields(buf, start, end):
    """Yields (field number, wire type, value) over buf[start:end]; a
    length-delimited value is (offset, length)."""
    i = start
    while i < end:
        tag, i = _varint(buf, i)
        field, wt = tag >> 3, tag & 7
        if wt == _VARINT:
            v, i = _varint(buf, i)
        elif wt == _I64:
            v = int.from_bytes(buf[i:i + 8], "little")
            i += 8
        elif wt == _LEN:
            n, i = _varint(buf, i)
            v = (i, n)
            i += n
        elif wt == _I32:
            v = int.from_bytes(buf[i:i + 4], "little")
            i += 4
        else:
            raise WireError(f"wire type {wt} of field {field}")
        if i > end:
            raise WireError("a field runs past the end of its message")
        yield field, wt, v


class Column:
    __slots__ = ("name", "dtype", "shape", "elem_size", "data", "compression",
                 "uncompressed_size", "xxh3")

    def __init__(self):
        self.name = self.dtype = ""
        self.shape = []
        self.elem_size = self.compression = self.uncompressed_size = 0
        self.xxh3 = 0
        self.data = b""


class Batch:
    __slots__ = ("subscription_id", "schema_hash", "count", "position", "seq",
                 "flush_reason", "dropped_total", "lost_total", "publish_ns",
                 "columns", "schema")

    def __init__(self):
        self.subscription_id = self.schema = ""
        self.schema_hash = self.count = self.position = self.seq = 0
        self.flush_reason = self.dropped_total = self.lost_total = 0
        self.publish_ns = 0
        self.columns = []


def _text(mv, v):
    return bytes(mv[v[0]:v[0] + v[1]]).decode()


def _column(buf, mv, start, end):
    c = Column()
    for f, wt, v in _fields(buf, start, end):
        if f == 1 and wt == _LEN:
            c.name = _text(mv, v)
        elif f == 2 and wt == _LEN:
            c.dtype = _text(mv, v)
        elif f == 3:
            if wt == _LEN:  # packed
                j, stop = v[0], v[0] + v[1]
                while j < stop:
                    d, j = _varint(buf, j)
                    c.shape.append(d)
            else:
                c.shape.append(v)
        elif f == 4 and wt == _VARINT:
            c.elem_size = v
        elif f == 5 and wt == _LEN:
            c.data = mv[v[0]:v[0] + v[1]]
        elif f == 6 and wt == _VARINT:
            c.compression = v
        elif f == 7 and wt == _VARINT:
            c.uncompressed_size = v
        elif f == 8 and wt == _I64:
            c.xxh3 = v
    return c


_SCALARS = {3: "count", 4: "position", 5: "seq", 6: "flush_reason",
            7: "dropped_total", 8: "lost_total", 9: "publish_ns"}


def decode_batch(buf):
    """An ExperienceBatch from its bytes (a bytes object, kept alive by the
    columns' memoryviews)."""
    mv = memoryview(buf)
    b = Batch()
    try:
        for f, wt, v in _fields(buf, 0, len(buf)):
            if f == 10 and wt == _LEN:
                b.columns.append(_column(buf, mv, v[0], v[0] + v[1]))
            elif f in _SCALARS and wt == _VARINT:
                setattr(b, _SCALARS[f], v)
            elif f == 2 and wt == _I64:
                b.schema_hash = v
            elif f == 1 and wt == _LEN:
                b.subscription_id = _text(mv, v)
            elif f == 11 and wt == _LEN:
                b.schema = _text(mv, v)
    except IndexError:
        raise WireError("truncated ExperienceBatch") from None
    return b
