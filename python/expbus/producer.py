"""producer.py — Python games write records through libexpbus (ctypes):
attach to a stream with a schema, then write records from dicts of numpy
arrays (or scalars), whole columns at once, or fill reserved ring slots in
place through numpy views and commit them.

    from expbus.producer import Producer
    with Producer("grid", "obs f32[2,5,5]; action i32; reward f32") as p:
        p.write({"obs": obs, "action": 3, "reward": 1.0}, game=7, turn=t)

libexpbus.so is found through $EXPBUS_LIB (a path), else the build
directory ($EXPBUS_BUILD_DIR, else <repo>/build), else the system's library
path (ctypes.util.find_library). Needs numpy."""
import ctypes
import ctypes.util
import errno as _errno
import os
import subprocess
from pathlib import Path

import numpy as np

from . import (BrokerGone, BrokerRefused, ExpbusError, ProtocolError,
               RECORD_DONE, RECORD_TRUNCATED, Timeout, parse_schema)

__all__ = ["Producer", "Span", "LibraryNotFound", "find_library",
           "library_needs_preload", "library_env", "RECORD_DONE",
           "RECORD_TRUNCATED", "OWN_TIMESTAMPS"]

OWN_TIMESTAMPS = 1 << 0  # EXPBUS_PRODUCER_OWN_TIMESTAMPS


class LibraryNotFound(ExpbusError):
    """libexpbus.so is not where $EXPBUS_LIB, the build dir or the system
    library path say."""


class RecordHeader(ctypes.Structure):
    """struct expbus_record_header (expbus.h)."""
    _fields_ = [("seq", ctypes.c_uint64), ("timestamp_ns", ctypes.c_uint64),
                ("game", ctypes.c_uint32), ("player", ctypes.c_uint32),
                ("turn", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


class _Options(ctypes.Structure):
    """struct expbus_producer_options."""
    _fields_ = [("ring_slots", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


class _Span(ctypes.Structure):
    """struct expbus_span."""
    _fields_ = [("first", ctypes.c_void_p), ("stride", ctypes.c_size_t),
                ("count", ctypes.c_uint)]


# numpy view of the record header at the start of every ring slot.
_HEADER_FIELDS = [("seq", "<u8", 0), ("timestamp_ns", "<u8", 8),
                  ("game", "<u4", 16), ("player", "<u4", 20),
                  ("turn", "<u4", 24), ("flags", "<u4", 28)]


def find_library():
    """The path of libexpbus.so this module would load."""
    env = os.environ.get("EXPBUS_LIB")
    if env:
        if not os.path.exists(env):
            raise LibraryNotFound(f"EXPBUS_LIB={env} does not exist")
        return env
    build = os.environ.get("EXPBUS_BUILD_DIR")
    build = Path(build) if build else Path(__file__).resolve().parents[2] / "build"
    if (build / "libexpbus.so").exists():
        return str(build / "libexpbus.so")
    found = ctypes.util.find_library("expbus")
    if found:
        return found
    raise LibraryNotFound(
        "libexpbus.so not found: set EXPBUS_LIB to its path or "
        f"EXPBUS_BUILD_DIR to the meson build directory (tried {build})")


def _asan_runtime(lib):
    """The libasan the library links, or None when it is not an ASan
    build."""
    try:
        if b"libasan.so" not in Path(lib).read_bytes():
            return None
    except OSError:
        return None
    try:
        out = subprocess.run(["ldd", lib], capture_output=True, text=True,
                             timeout=10).stdout
        for line in out.splitlines():
            if "libasan.so" in line and "=>" in line:
                return line.split("=>")[1].split()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    out = subprocess.run(["gcc", "-print-file-name=libasan.so"],
                         capture_output=True, text=True).stdout.strip()
    return out or "libasan.so"


def _asan_loaded():
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return False


def library_needs_preload(lib=None):
    """True when libexpbus is an AddressSanitizer build and this process
    does not have the ASan runtime loaded: loading it would abort."""
    return _asan_runtime(lib or find_library()) is not None and not _asan_loaded()


def library_env(env=None, lib=None):
    """A copy of env (default os.environ) for a child process that will
    load libexpbus: with an ASan build, LD_PRELOAD names libasan and leak
    detection is off (the interpreter's own allocations would be reported)."""
    env = dict(os.environ if env is None else env)
    asan = _asan_runtime(lib or find_library())
    if asan:
        pre = env.get("LD_PRELOAD", "")
        if "libasan" not in pre:
            env["LD_PRELOAD"] = asan + (" " + pre if pre else "")
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
                               ).lstrip(":")
    return env


_LIB = None


def _lib():
    global _LIB
    if _LIB is not None:
        return _LIB
    path = find_library()
    if library_needs_preload(path):
        raise ExpbusError(
            f"{path} is built with AddressSanitizer: run Python with "
            f"LD_PRELOAD={_asan_runtime(path)} ASAN_OPTIONS=detect_leaks=0 "
            "(expbus.producer.library_env() makes such an environment)")
    lib = ctypes.CDLL(path)
    vp, i, u32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32
    sigs = {
        "expbus_new": (i, [ctypes.c_char_p, ctypes.POINTER(vp)]),
        "expbus_free": (vp, [vp]),
        "expbus_last_error": (ctypes.c_char_p, [vp]),
        "expbus_producer_attach": (i, [vp, ctypes.c_char_p, ctypes.c_char_p,
                                       ctypes.POINTER(_Options),
                                       ctypes.POINTER(vp)]),
        "expbus_producer_close": (vp, [vp]),
        "expbus_producer_data_size": (ctypes.c_size_t, [vp]),
        "expbus_producer_field_offset": (ctypes.c_long, [vp, ctypes.c_char_p]),
        "expbus_producer_capacity": (u32, [vp]),
        "expbus_reserve": (i, [vp, ctypes.c_uint, i, ctypes.POINTER(_Span)]),
        "expbus_commit": (i, [vp, ctypes.c_uint]),
        "expbus_write": (i, [vp, ctypes.POINTER(RecordHeader), vp,
                             ctypes.c_size_t, i]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    _LIB = lib
    return lib


def _timeout_ms(timeout):
    """Seconds (None: for ever) to libexpbus's timeout_ms."""
    if timeout is None:
        return -1
    return max(0, int(round(timeout * 1000)))


def _schema_text(schema):
    if isinstance(schema, str):
        return schema
    if hasattr(schema, "text"):
        return schema.text
    # {name: "f32[9,20,20]"} or {name: (numpy dtype, shape)}
    from . import schema_dtype
    parts = []
    for name, spec in schema.items():
        if isinstance(spec, str):
            parts.append(f"{name} {spec}")
        else:
            dt, shape = spec
            dims = "[" + ",".join(map(str, shape)) + "]" if shape else ""
            parts.append(f"{name} {schema_dtype(dt)}{dims}")
    return "; ".join(parts)


_CONNECT_ERRNOS = (_errno.ENOENT, _errno.ECONNREFUSED, _errno.EACCES,
                   _errno.EPERM, _errno.ENOTSOCK)


class Span:
    """Reserved ring slots, written in place: records is a writable numpy
    structured array [count] with the header fields (game, player, turn,
    flags, timestamp_ns; seq is set on commit) and the schema's fields;
    span["obs"] is that column, [count, *shape]. commit() publishes them.
    The views point into the ring: do not touch them after committing."""

    def __init__(self, producer, records):
        self._producer = producer
        self.records = records
        self.count = len(records)
        self.committed = False

    def __getitem__(self, name):
        return self.records[name]

    def __setitem__(self, name, value):
        self.records[name] = value

    def __len__(self):
        return self.count

    def commit(self):
        """Publishes these records (they must be the oldest reserved)."""
        if not self.committed:
            self._producer.commit(self.count)
            self.committed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.commit()
        return False


class Producer:
    """A producer attached to stream with schema: a str
    ("obs f32[8,8]; action i32"), or a dict {name: "f32[8,8]"} or
    {name: (numpy dtype, shape)}. socket: the broker's (None: default).
    ring_slots: records in the ring, a power of two (0: broker's default).
    own_timestamps: keep the timestamp_ns given instead of stamping at
    commit. Raises BrokerRefused with the broker's message (e.g. the field
    that differs from the stream's schema), BrokerGone when no broker
    listens. Not thread-safe: one producer per thread."""

    def __init__(self, stream, schema, socket=None, *, ring_slots=0,
                 own_timestamps=False):
        self._p = self._bus = None
        lib = self._lib = _lib()
        text = _schema_text(schema)
        self.schema = parse_schema(text)
        self.stream = stream
        bus = ctypes.c_void_p()
        err = lib.expbus_new(socket.encode() if socket else None,
                             ctypes.byref(bus))
        if err < 0:
            raise ExpbusError(f"expbus_new: {os.strerror(-err)}", -err)
        self._bus = bus
        opts = _Options(ring_slots, OWN_TIMESTAMPS if own_timestamps else 0)
        p = ctypes.c_void_p()
        err = lib.expbus_producer_attach(bus, stream.encode(), text.encode(),
                                         ctypes.byref(opts), ctypes.byref(p))
        if err < 0:
            msg = self._error(err)
            self.close()
            # connect() failed (client.c words each case): no broker.
            if (-err in _CONNECT_ERRNOS
                    and not msg.startswith("broker refused")):
                raise BrokerGone(msg, -err)
            raise BrokerRefused(msg, -err)
        self._p = p
        self.data_size = lib.expbus_producer_data_size(p)
        self.capacity = lib.expbus_producer_capacity(p)
        for f in self.schema.fields:
            if lib.expbus_producer_field_offset(p, f.name.encode()) != f.offset:
                self.close()
                raise ProtocolError(f"libexpbus lays field {f.name!r} out "
                                    "elsewhere than this module", _errno.EPROTO)
        if self.data_size != self.schema.data_size:
            self.close()
            raise ProtocolError("libexpbus's record size differs from this "
                                "module's", _errno.EPROTO)
        # One record's data, reused by write(): a view per field into it.
        self._data = np.zeros(max(self.data_size, 8), np.uint8)
        self._data_ptr = self._data.ctypes.data
        self._fields = {f.name: np.ndarray(f.shape, np.dtype(f.dtype.numpy),
                                           buffer=self._data, offset=f.offset)
                        for f in self.schema.fields}
        self._hdr = RecordHeader()
        self._span = _Span()
        self._slot_dtypes = {}

    def _error(self, err):
        msg = self._lib.expbus_last_error(self._bus) if self._bus else b""
        return (msg or b"").decode(errors="replace") or os.strerror(-err)

    def _raise(self, err, what):
        msg = self._error(err)
        if err in (-_errno.EAGAIN, -_errno.ETIMEDOUT):
            raise Timeout(f"{what}: the ring stayed full (no trainer taking "
                          "records, or a lossless one holding them back)",
                          -err)
        if err == -_errno.EPIPE:
            raise BrokerGone(f"{what}: {msg}", -err)
        raise ExpbusError(f"{what}: {msg}", -err)

    def field_offset(self, name):
        """Offset of a field in a record's data."""
        return self.schema[name].offset

    def _check(self):
        if self._p is None:
            raise ExpbusError("the producer is closed", _errno.EBADF)

    def write(self, fields=None, *, game=0, player=0, turn=0, flags=0,
              timestamp_ns=0, timeout=None, **kw):
        """Writes one record: fields is a dict {name: value} (numpy arrays,
        sequences or scalars, cast to the field's dtype; keywords work too)
        or a bytes-like object of the record's data layout. timeout:
        seconds to wait for room (None: for ever, 0: not at all), then
        expbus.Timeout. flags: expbus.RECORD_DONE at an episode's end."""
        self._check()
        if fields is not None and not isinstance(fields, dict):
            raw = memoryview(fields).cast("B")
            if len(raw) > self.data_size:
                raise ValueError(f"record data is {len(raw)} bytes; the "
                                 f"schema's record has {self.data_size}")
            self._data[:len(raw)] = np.frombuffer(raw, np.uint8)
            self._data[len(raw):] = 0
        else:
            values = dict(fields or (), **kw)
            unknown = values.keys() - self._fields.keys()
            missing = self._fields.keys() - values.keys()
            if unknown or missing:
                raise KeyError(f"record fields {sorted(values)} do not match "
                               f"the schema's {list(self._fields)}")
            for name, view in self._fields.items():
                view[...] = values[name]
        h = self._hdr
        h.game, h.player, h.turn, h.flags = game, player, turn, flags
        h.timestamp_ns = timestamp_ns
        err = self._lib.expbus_write(self._p, h, self._data_ptr,
                                     self.data_size, _timeout_ms(timeout))
        if err < 0:
            self._raise(err, "write")

    def _slot_dtype(self, stride):
        dt = self._slot_dtypes.get(stride)
        if dt is None:
            names, formats, offsets = [], [], []
            for name, fmt, off in _HEADER_FIELDS:
                names.append(name), formats.append(fmt), offsets.append(off)
            for f in self.schema.fields:
                names.append(f.name)
                formats.append((np.dtype(f.dtype.numpy), f.shape))
                offsets.append(32 + f.offset)
            dt = np.dtype({"names": names, "formats": formats,
                           "offsets": offsets, "itemsize": stride})
            self._slot_dtypes[stride] = dt
        return dt

    def reserve(self, n=1, timeout=None):
        """Reserves up to n contiguous ring slots (fewer at the ring's end:
        reserve again for the rest) and returns a Span to fill in place.
        Reserving again before commit extends the reservation."""
        self._check()
        s = self._span
        got = self._lib.expbus_reserve(self._p, n, _timeout_ms(timeout),
                                       ctypes.byref(s))
        if got < 0:
            self._raise(got, "reserve")
        buf = (ctypes.c_char * (s.stride * s.count)).from_address(s.first)
        records = np.frombuffer(buf, self._slot_dtype(s.stride), s.count)
        return Span(self, records)

    def commit(self, n):
        """Publishes the oldest n reserved records."""
        self._check()
        err = self._lib.expbus_commit(self._p, n)
        if err < 0:
            self._raise(err, "commit")

    def write_many(self, columns, *, game=0, player=0, turn=0, flags=0,
                   timeout=None):
        """Writes len(first column) records: columns maps every field to an
        array of [n, *shape]; game, player, turn, flags are scalars or
        arrays [n]. Copies column-wise into reserved slots."""
        n = None
        for f in self.schema.fields:
            if f.name not in columns:
                raise KeyError(f"column {f.name!r} missing")
            m = len(columns[f.name])
            if n is not None and m != n:
                raise ValueError("columns differ in length")
            n = m
        done = 0
        while done < n:
            span = self.reserve(n - done, timeout)
            k = span.count
            r = span.records
            for name, v in (("game", game), ("player", player),
                            ("turn", turn), ("flags", flags)):
                r[name] = v[done:done + k] if np.ndim(v) else v
            for f in self.schema.fields:
                r[f.name] = columns[f.name][done:done + k]
            span.commit()
            done += k
        return n

    def close(self):
        """Detaches: records already committed are still delivered."""
        if self._p is not None:
            self._lib.expbus_producer_close(self._p)
            self._p = None
        if self._bus is not None:
            self._lib.expbus_free(self._bus)
            self._bus = None

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
