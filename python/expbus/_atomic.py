"""_atomic.py — how the Python reader loads and stores the counters it
shares with the broker, with the memory order ring.c gives them: the tail
is loaded with acquire (pairs with the broker's store-release when it
publishes a batch), the head is stored with release (pairs with the
broker's load-acquire before it reuses a slot), and the sleeper's fence is
seq_cst (ring.c's Dekker pattern).

Python has no memory model of its own, so there are two ways:

- "lib": libexpbus's expbus_load_acquire_u64, expbus_store_release_u64 and
  expbus_fence_seq_cst through ctypes, correct on every architecture. Used
  whenever libexpbus can be loaded.
- "plain": aligned 8-byte loads and stores through memoryviews cast to 'Q'
  (one machine instruction each: never torn), and an uncontended lock as
  the fence. Correct only on x86-64: under its total store order every
  load is a load-acquire and every store a store-release at the hardware
  level, and a LOCK-prefixed instruction (taking a lock) is a full fence;
  CPython's interpreter, being compiled C that calls out between bytecodes,
  does not reorder these accesses across the statements that make them.
  On any other architecture (aarch64: Grace Hopper) plain accesses are
  relaxed and a batch could be read before it is visible, so the reader
  refuses there rather than be silently wrong.

EXPBUS_PY_ATOMICS=lib|plain forces one (tests use it); unset: lib when
libexpbus loads, else plain on x86-64, else an error that says what to do.
"""
import ctypes
import ctypes.util
import errno
import os
import platform
import threading
from pathlib import Path

from . import ExpbusError

X86_64 = ("x86_64", "amd64", "AMD64", "x64")


class MemoryOrderUnavailable(ExpbusError):
    """Neither libexpbus nor the x86-64 hardware guarantee gives this
    process acquire/release on shared counters."""


def _library_path():
    """libexpbus.so as the producer binding finds it (stdlib only)."""
    env = os.environ.get("EXPBUS_LIB")
    if env:
        return env if os.path.exists(env) else None
    build = os.environ.get("EXPBUS_BUILD_DIR")
    build = Path(build) if build else Path(__file__).resolve().parents[2] / "build"
    if (build / "libexpbus.so").exists():
        return str(build / "libexpbus.so")
    return ctypes.util.find_library("expbus")


def _needs_asan(path):
    """An AddressSanitizer build aborts the process when loaded without its
    runtime first: never try that."""
    try:
        if b"libasan.so" not in Path(path).read_bytes():
            return False
        with open("/proc/self/maps") as f:
            return "libasan" not in f.read()
    except OSError:
        return False


def _load_library():
    """(ctypes library, None) or (None, why not)."""
    path = _library_path()
    if not path:
        return None, "libexpbus.so was not found (set EXPBUS_LIB)"
    if _needs_asan(path):
        return None, f"{path} is an ASan build and libasan is not preloaded"
    try:
        lib = ctypes.CDLL(path)
        load = lib.expbus_load_acquire_u64
        store = lib.expbus_store_release_u64
        fence = lib.expbus_fence_seq_cst
    except (OSError, AttributeError) as e:
        return None, f"{path} cannot be used: {e}"
    load.restype, load.argtypes = ctypes.c_uint64, [ctypes.c_void_p]
    store.restype = None
    store.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    fence.restype, fence.argtypes = None, []
    return lib, None


class _PyBuffer(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.py_object),
                ("len", ctypes.c_ssize_t), ("itemsize", ctypes.c_ssize_t),
                ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p),
                ("strides", ctypes.c_void_p),
                ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p)]


def _address(mm):
    """The address of an mmap's first byte (read-only ones included, which
    ctypes' from_buffer refuses). The caller keeps mm open while it uses
    the address."""
    view = _PyBuffer()
    get = ctypes.pythonapi.PyObject_GetBuffer
    get.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
    rel = ctypes.pythonapi.PyBuffer_Release
    rel.argtypes = [ctypes.POINTER(_PyBuffer)]
    if get(mm, ctypes.byref(view), 0) != 0:  # PyBUF_SIMPLE
        raise MemoryOrderUnavailable("cannot take the mapping's address")
    try:
        return view.buf
    finally:
        rel(ctypes.byref(view))


class _LibCounter:
    """A shared u64 loaded with acquire and stored with release by
    libexpbus."""
    __slots__ = ("_lib", "_addr", "_mm")

    def __init__(self, lib, mm, offset):
        if offset % 8:
            raise ValueError("shared counters are 8-byte aligned")
        self._lib, self._mm = lib, mm
        self._addr = _address(mm) + offset

    def load(self):
        return self._lib.expbus_load_acquire_u64(self._addr)

    def store(self, value):
        self._lib.expbus_store_release_u64(self._addr, value)

    def release(self):
        self._mm = None


class _PlainCounter:
    """A shared u64 through a native memoryview: x86-64 only (see the
    module's docstring for why that is acquire/release there)."""
    __slots__ = ("_mv",)

    def __init__(self, mm, offset):
        self._mv = memoryview(mm)[offset:offset + 8].cast("Q")

    def load(self):
        return self._mv[0]

    def store(self, value):
        self._mv[0] = value

    def release(self):
        self._mv.release()


class Atomics:
    """The chosen way: counter(mm, offset) and fence()."""

    def __init__(self, mode, lib=None):
        self.mode = mode
        self._lib = lib
        if mode == "lib":
            self.fence = lib.expbus_fence_seq_cst
        else:
            lock = threading.Lock()

            def fence():
                # A LOCK-prefixed read-modify-write: a full fence on x86-64.
                lock.acquire()
                lock.release()
            self.fence = fence

    def counter(self, mm, offset):
        if self.mode == "lib":
            return _LibCounter(self._lib, mm, offset)
        return _PlainCounter(mm, offset)


def choose(mode=None, machine=None, loader=_load_library):
    """Picks the way for this process. mode: "lib", "plain" or None (the
    environment's EXPBUS_PY_ATOMICS, else automatic); machine: the CPU
    (platform.machine(); tests pass another)."""
    mode = mode or os.environ.get("EXPBUS_PY_ATOMICS") or None
    machine = machine or platform.machine()
    x86 = machine in X86_64
    if mode not in (None, "lib", "plain"):
        raise ValueError(f"EXPBUS_PY_ATOMICS must be lib or plain, not {mode!r}")
    why = None
    if mode in (None, "lib"):
        lib, why = loader()
        if lib is not None:
            return Atomics("lib", lib)
        if mode == "lib":
            raise MemoryOrderUnavailable(
                f"EXPBUS_PY_ATOMICS=lib but {why}", errno.ENOSYS)
    if x86:
        return Atomics("plain")
    raise MemoryOrderUnavailable(
        f"the Python reader cannot guarantee acquire/release on {machine}: "
        f"plain loads and stores are only that on x86-64, and "
        f"{why or 'libexpbus was not asked for (EXPBUS_PY_ATOMICS=plain)'}. "
        "Build libexpbus (meson) and point EXPBUS_LIB or EXPBUS_BUILD_DIR "
        "at it.", errno.ENOSYS)


_CHOSEN = None


def default():
    """The process-wide choice, made once on first use."""
    global _CHOSEN
    if _CHOSEN is None:
        _CHOSEN = choose()
    return _CHOSEN
