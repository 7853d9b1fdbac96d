"""expbus — read reinforcement-learning experiences from the expbus broker
in place, from Python.

    import expbus
    with expbus.subscribe("demo", batch_size=256) as sub:
        for batch in sub:
            obs = batch["obs"]      # read-only numpy view of the batch ring
            ...                     # released when the loop moves on

The reader (this package without its torch and producer modules) needs the
standard library only: a Unix socket with SCM_RIGHTS, mmap and select. Columns
are numpy arrays when numpy is importable, memoryviews otherwise.
expbus.torch has a PyTorch IterableDataset; expbus.producer binds
libexpbus for Python games. python/README.md is the manual."""

import collections as _collections
import re as _re

__all__ = [
    "subscribe", "Subscription", "Batch", "Column",
    "ExpbusError", "BrokerRefused", "BrokerGone", "ProtocolError",
    "BatchReleased", "Timeout", "UnsupportedDtype",
    "DType", "DTYPES", "dtype", "numpy_dtype", "schema_dtype",
    "Field", "Schema", "parse_schema", "default_socket",
    "LOSSLESS", "LOSSY", "RECORD_DONE", "RECORD_TRUNCATED",
    "FLUSH_FULL", "FLUSH_TIMEOUT", "FLUSH_DRAIN", "HEADER_COLUMNS",
]

# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class ExpbusError(Exception):
    """Base of every expbus error; errno is the C library's (positive)
    errno for the same failure, message the sentence that says why."""

    def __init__(self, message, errno=None):
        super().__init__(message)
        self.message = message
        self.errno = errno


class BrokerRefused(ExpbusError):
    """The broker answered a request with an error; message is the broker's
    own text (e.g. "no stream 'x' yet: ..."), errno its error code."""


class BrokerGone(ExpbusError, ConnectionError):
    """The broker hung up (or is not there): every batch it published
    before has been handed out."""


class ProtocolError(ExpbusError):
    """Something the broker sent breaks the protocol: a bad message, a
    segment that is not what it claims, an impossible counter."""


class BatchReleased(ExpbusError):
    """A released batch's columns were asked for: the broker may already
    have overwritten them."""


class Timeout(ExpbusError, TimeoutError):
    """No batch came within the timeout."""


class UnsupportedDtype(ExpbusError, TypeError):
    """A dtype expbus has no schema spelling for (or the reverse)."""


# ---------------------------------------------------------------------------
# Dtypes: enum expbus_dtype <-> schema name <-> numpy <-> memoryview format
# ---------------------------------------------------------------------------

DType = _collections.namedtuple("DType", "code name size fmt numpy")
DType.__doc__ = """One element type of expbus.h's enum expbus_dtype: its
code, schema name, size in bytes, memoryview/struct native format and numpy
dtype string (little-endian, as every segment is)."""

DTYPES = {d.code: d for d in (
    DType(1, "bool", 1, "?", "|b1"),
    DType(2, "i8", 1, "b", "|i1"),
    DType(3, "u8", 1, "B", "|u1"),
    DType(4, "i16", 2, "h", "<i2"),
    DType(5, "u16", 2, "H", "<u2"),
    DType(6, "i32", 4, "i", "<i4"),
    DType(7, "u32", 4, "I", "<u4"),
    DType(8, "i64", 8, "q", "<i8"),
    DType(9, "u64", 8, "Q", "<u8"),
    # memoryview has no half-float format: without numpy an f16 column is
    # its raw 16-bit words ('H'); struct.unpack('e', ...) decodes one.
    DType(10, "f16", 2, "H", "<f2"),
    DType(11, "f32", 4, "f", "<f4"),
    DType(12, "f64", 8, "d", "<f8"),
)}
_BY_NAME = {d.name: d for d in DTYPES.values()}


def dtype(spec):
    """The DType for a code (int) or a schema name ("f32"); raises
    UnsupportedDtype naming the ones that exist."""
    d = DTYPES.get(spec) if isinstance(spec, int) else _BY_NAME.get(spec)
    if d is None:
        raise UnsupportedDtype(
            f"unsupported expbus dtype {spec!r}; expbus has "
            + ", ".join(_BY_NAME), errno=22)
    return d


def numpy_dtype(spec):
    """The numpy dtype of an expbus dtype (code or schema name)."""
    import numpy
    return numpy.dtype(dtype(spec).numpy)


def schema_dtype(np_dtype):
    """The schema name ("f32") of a numpy dtype, or UnsupportedDtype for
    one expbus cannot carry (complex, float128, object, strings, big-endian
    data, structured dtypes...)."""
    import numpy
    try:
        dt = numpy.dtype(np_dtype)
    except TypeError as e:
        raise UnsupportedDtype(f"not a numpy dtype: {np_dtype!r}", 22) from e
    for d in DTYPES.values():
        if dt == numpy.dtype(d.numpy):
            return d.name
    raise UnsupportedDtype(
        f"numpy dtype {dt} has no expbus equivalent; expbus carries "
        "bool, int8-64, uint8-64, float16/32/64 (little-endian)", 22)


# ---------------------------------------------------------------------------
# Schemas (the text form of src/lib/schema.h) and their record layout
# ---------------------------------------------------------------------------

HEADER_COLUMNS = ("seq", "timestamp", "source", "game", "player", "turn",
                  "flags")

Field = _collections.namedtuple("Field", "name dtype shape offset size")
Field.__doc__ = """A schema field: name, DType, shape (tuple), offset of
its bytes in a record's data, and their count."""


class Schema:
    """A parsed schema: fields in order with the record layout libexpbus
    uses (each field aligned to its element size, data_size a multiple of
    8), and the canonical text."""

    def __init__(self, fields, data_size):
        self.fields = fields
        self.data_size = data_size
        self.by_name = {f.name: f for f in fields}

    @property
    def text(self):
        return "; ".join(
            f.name + " " + f.dtype.name
            + ("[" + ",".join(map(str, f.shape)) + "]" if f.shape else "")
            for f in self.fields)

    def __getitem__(self, name):
        return self.by_name[name]

    def __iter__(self):
        return iter(self.fields)

    def __len__(self):
        return len(self.fields)

    def __repr__(self):
        return f"Schema({self.text!r})"


_FIELD_RE = _re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:?\s*([a-z0-9]+)\s*(?:\[([^\]]*)\])?\s*$")


def parse_schema(text):
    """Parses "obs f32[9,20,20]; action i32; reward f32" (fields separated
    by ';' or newlines). Raises ValueError (UnsupportedDtype for a dtype)
    naming the field; the broker remains the judge of what it accepts."""
    fields, end = [], 0
    for part in _re.split(r"[;\n]", text):
        if not part.strip():
            continue
        m = _FIELD_RE.match(part)
        if not m:
            raise ValueError(f"schema field {part.strip()!r} is not "
                             "'name dtype' or 'name dtype[d0,d1,...]'")
        name, dname, dims = m.groups()
        if name in HEADER_COLUMNS:
            raise ValueError(f"field name {name!r} is reserved for a header "
                             "column")
        if name in (f.name for f in fields):
            raise ValueError(f"field {name!r} appears twice")
        try:
            dt = dtype(dname)
        except UnsupportedDtype as e:
            raise UnsupportedDtype(f"field {name!r}: {e}", 22) from None
        shape = ()
        if dims is not None:
            try:
                shape = tuple(int(x) for x in dims.split(","))
            except ValueError:
                raise ValueError(f"field {name!r}: bad shape [{dims}]") from None
            if not shape or len(shape) > 8 or min(shape) < 1:
                raise ValueError(f"field {name!r}: bad shape [{dims}]")
        size = dt.size
        for n in shape:
            size *= n
        offset = (end + dt.size - 1) // dt.size * dt.size
        fields.append(Field(name, dt, shape, offset, size))
        end = offset + size
    if not fields:
        raise ValueError("empty schema (expected fields such as "
                         "'obs f32[4]; action i32')")
    return Schema(fields, (end + 7) // 8 * 8)


def default_socket():
    """The broker's default socket, as libexpbus picks it:
    $XDG_RUNTIME_DIR/expbus.sock, else /run/expbus/expbus.sock."""
    import os
    d = os.environ.get("XDG_RUNTIME_DIR")
    return f"{d}/expbus.sock" if d else "/run/expbus/expbus.sock"


from ._proto import (LOSSLESS, LOSSY, RECORD_DONE, RECORD_TRUNCATED,  # noqa: E402
                     FLUSH_FULL, FLUSH_TIMEOUT, FLUSH_DRAIN)
from ._reader import subscribe, Subscription, Batch, Column  # noqa: E402
