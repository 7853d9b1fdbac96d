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
_U32, _U64 = (1 << 32) - 1, (1 << 64) - 1


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
            return result & _U64, i  # a 10th byte may carry bits past 64
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def _skip(buf, i, wt, field):
    """The index after an unknown field's value."""
    if wt == _VARINT:
        return _varint(buf, i)[1]
    if wt == _I64:
        return i + 8
    if wt == _LEN:
        n, i = _varint(buf, i)
        return i + n
    if wt == _I32:
        return i + 4
    raise WireError(f"wire type {wt} of field {field}")


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

_from = int.from_bytes


def _i32(v):
    """An enum (int32) as protobuf reads it from a varint."""
    v &= _U32
    return v - (1 << 32) if v >> 31 else v


def _str(buf, i, j):
    try:
        return str(buf[i:j], "utf-8")
    except UnicodeDecodeError:
        raise WireError("a string field is not UTF-8") from None


# The two loops below are written out, not shared through a field
# generator: a batch is a few dozen fields, and at thousands of batches a
# second the generator's frames were half of the decoding time. A tag or
# length below 0x80 (nearly all of them) is read without calling _varint.

def _column(buf, mv, i, end):
    c = Column()
    while i < end:
        tag = buf[i]
        if tag < 0x80:
            i += 1
        else:
            tag, i = _varint(buf, i)
        f, wt = tag >> 3, tag & 7
        if not f:
            raise WireError("field number 0")
        if wt == _LEN:
            n = buf[i]
            if n < 0x80:
                i += 1
            else:
                n, i = _varint(buf, i)
            j = i + n
            if j > end:
                raise WireError("a field runs past the end of its message")
            if f == 5:
                c.data = mv[i:j]
            elif f == 1:
                c.name = _str(buf, i, j)
            elif f == 2:
                c.dtype = _str(buf, i, j)
            elif f == 3:
                while i < j:
                    d, i = _varint(buf, i)
                    c.shape.append(d & _U32)
                if i > j:
                    raise WireError("a packed shape runs past its end")
            i = j
        elif wt == _VARINT:
            v, i = _varint(buf, i)
            if f == 4:
                c.elem_size = v & _U32
            elif f == 7:
                c.uncompressed_size = v
            elif f == 6:
                c.compression = _i32(v)
            elif f == 3:
                c.shape.append(v & _U32)
        elif wt == _I64:
            if f == 8:
                c.xxh3 = _from(buf[i:i + 8], "little")
            i += 8
        else:
            i = _skip(buf, i, wt, f)
    if i > end:
        raise WireError("a field runs past the end of its message")
    return c


def decode_batch(buf):
    """An ExperienceBatch from its bytes (a bytes object, kept alive by the
    columns' memoryviews)."""
    mv = memoryview(buf)
    b = Batch()
    cols = b.columns
    end = len(buf)
    i = 0
    try:
        while i < end:
            tag = buf[i]
            if tag < 0x80:
                i += 1
            else:
                tag, i = _varint(buf, i)
            f, wt = tag >> 3, tag & 7
            if not f:
                raise WireError("field number 0")
            if wt == _VARINT:
                v, i = _varint(buf, i)
                if f == 3:
                    b.count = v & _U32
                elif f == 4:
                    b.position = v
                elif f == 5:
                    b.seq = v
                elif f == 6:
                    b.flush_reason = _i32(v)
                elif f == 7:
                    b.dropped_total = v
                elif f == 8:
                    b.lost_total = v
                elif f == 9:
                    b.publish_ns = v
            elif wt == _LEN:
                n = buf[i]
                if n < 0x80:
                    i += 1
                else:
                    n, i = _varint(buf, i)
                j = i + n
                if j > end:
                    raise WireError("a field runs past the end of its message")
                if f == 10:
                    cols.append(_column(buf, mv, i, j))
                elif f == 1:
                    b.subscription_id = _str(buf, i, j)
                elif f == 11:
                    b.schema = _str(buf, i, j)
                i = j
            elif wt == _I64:
                if f == 2:
                    b.schema_hash = _from(buf[i:i + 8], "little")
                i += 8
            else:
                i = _skip(buf, i, wt, f)
        if i > end:
            raise WireError("a field runs past the end of its message")
    except IndexError:
        raise WireError("truncated ExperienceBatch") from None
    return b
