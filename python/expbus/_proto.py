"""_proto.py — the wire formats the Python reader speaks: control messages
(src/lib/proto.h) and shared-memory headers (src/lib/layout.h), as struct
format strings, with the constants and checks that go with them.

Every format is little-endian with no implicit padding ('<'), so its size is
the C struct's size; the asserts at the bottom check that against the sizes
the C headers _Static_assert. Counters that another process writes
concurrently are never read through these formats (struct's standard-size
codes move one byte at a time): _reader.py reads them through memoryviews
cast to native 'Q'/'I', which load and store a whole aligned word."""
import errno as _errno
import fcntl
import struct

# layout.h
LAYOUT_VERSION = 2  # 2: producer ids survive a restart; stats under a seqlock
MAGIC_PRODUCER_RING = 0x52425845  # "EXBR"
MAGIC_BATCH_RING = 0x42425845  # "EXBB"
MAGIC_RELEASE_PAGE = 0x4C425845  # "EXBL"
MAGIC_STATS = 0x53425845  # "EXBS"
CACHE_LINE = 64
NAME_MAX_LEN = 64
MAX_DIMS = 8  # EXPBUS_MAX_DIMS, expbus.h
HEADER_COLUMNS = 7
MAX_FIELDS = 64
MAX_COLUMNS = HEADER_COLUMNS + MAX_FIELDS
RELEASE_PAGE_SIZE = 4096

# proto.h
PROTO_MAGIC = 0x4D425845  # "EXBM"
PROTO_VERSION = 1
PROTO_MAX_MSG = 65536
PROTO_MAX_FDS = 4
PROTO_MAX_FILTER = 1024
MSG_ATTACH = 1
MSG_SUBSCRIBE = 2
MSG_STATS = 3
MSG_OK_ATTACH = 0x81
MSG_OK_SUBSCRIBE = 0x82
MSG_OK_STATS = 0x83
MSG_ERROR = 0xFF
REPLY_TIMEOUT_S = 10.0  # CLIENT_REPLY_TIMEOUT_MS, client.h

# enum expbus_policy, enum expbus_flush_reason, record flags (expbus.h)
LOSSLESS = 0
LOSSY = 1
FLUSH_FULL = 1
FLUSH_TIMEOUT = 2
FLUSH_DRAIN = 3
RECORD_DONE = 1 << 0
RECORD_TRUNCATED = 1 << 1
SUBSCRIBE_CHECKSUM = 1 << 0
# proto.h: a consumer subscribing again after its broker went away.
SUBSCRIBE_RESUMING = 1 << 31

# Seals (linux/fcntl.h); F_SEAL_FUTURE_WRITE is not in Python's fcntl.
F_SEAL_SEAL = getattr(fcntl, "F_SEAL_SEAL", 0x0001)
F_SEAL_SHRINK = getattr(fcntl, "F_SEAL_SHRINK", 0x0002)
F_SEAL_GROW = getattr(fcntl, "F_SEAL_GROW", 0x0004)
F_SEAL_FUTURE_WRITE = 0x0010
F_GET_SEALS = getattr(fcntl, "F_GET_SEALS", 1034)
SEALS_SHARED = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL  # SHM_SEALS_SHARED
SEALS_READONLY = SEALS_SHARED | F_SEAL_FUTURE_WRITE  # SHM_SEALS_READONLY

# struct msg_header: magic, version, type, length, reserved
MSG_HEADER = struct.Struct("<IHHII")
# struct msg_subscribe: header, stream[64], group[64], batch_size,
# max_delay_us, batch_slots, policy, min_turn, flags, n_games, n_players;
# followed by n_games then n_players uint32 ids
MSG_SUBSCRIBE_S = struct.Struct("<IHHII64s64s8I")
# struct msg_ok_subscribe: header, subscription_id, capacity, segment_size,
# schema_hash, schema_len, batch_size; followed by the schema text
MSG_OK_SUBSCRIBE_S = struct.Struct("<IHHIIIIQQII")
# struct msg_error: header, error (positive errno), text_len; then the text
MSG_ERROR_S = struct.Struct("<IHHIIiI")
# struct msg_stats: header only
MSG_STATS_S = MSG_HEADER
# struct msg_ok_stats: header, segment_size
MSG_OK_STATS_S = struct.Struct("<IHHIIQ")

# struct seg_header: magic, version, header_size, size
SEG_HEADER = struct.Struct("<IHHQ")
# struct batch_ring up to its pad0: seg_header, capacity, batch_size,
# slot_size, data_offset, schema_hash, subscription_id, ncolumns
BATCH_RING = struct.Struct("<IHHQIIQQQII")
BATCH_RING_PROD = 64  # offsetof(struct batch_ring, prod): struct ring_side
BATCH_RING_DROPPED = 8704  # offsetof(struct batch_ring, dropped): u64
BATCH_RING_COLUMNS = 128  # offsetof(struct batch_ring, columns)
# struct ring_side: pos (u64) at +0, sleeping (u32) at +8
RING_SIDE_POS = 0
RING_SIDE_SLEEPING = 8
# struct column_desc: name[64], dtype, ndim, shape[8], elem_size, pad, offset
COLUMN_DESC = struct.Struct("<64sII8IIIQ")
# struct release_page: seg_header, pad to 64, then cons (struct ring_side)
RELEASE_PAGE_CONS = 64
# struct expbus_batch: seq, count, flush_reason, checksum, dropped_total,
# publish_ns (reserved[3] not read)
BATCH_HEADER = struct.Struct("<QIIQQQ")
BATCH_HEADER_SIZE = 64
# struct expbus_record_header: seq, timestamp_ns, game, player, turn, flags
RECORD_HEADER = struct.Struct("<QQIIII")

assert MSG_HEADER.size == 16
assert MSG_SUBSCRIBE_S.size == 176
assert MSG_OK_SUBSCRIBE_S.size == 48
assert MSG_ERROR_S.size == 24
assert MSG_OK_STATS_S.size == 24
assert SEG_HEADER.size == 16
assert BATCH_RING.size == 56
assert COLUMN_DESC.size == 120
assert RECORD_HEADER.size == 32
BATCH_RING_SIZE = BATCH_RING_COLUMNS + MAX_COLUMNS * COLUMN_DESC.size


def header(msg_type, length):
    """Packs a struct msg_header."""
    return MSG_HEADER.pack(PROTO_MAGIC, PROTO_VERSION, msg_type, length, 0)


def check_header(buf):
    """Validates a received message's header as proto_check does; returns
    its type or raises ValueError naming what is wrong."""
    if len(buf) < MSG_HEADER.size:
        raise ValueError(f"message of {len(buf)} bytes is shorter than a header")
    magic, version, mtype, length, reserved = MSG_HEADER.unpack_from(buf)
    if magic != PROTO_MAGIC:
        raise ValueError(f"bad magic 0x{magic:08x}: not an expbus message")
    if version != PROTO_VERSION:
        raise ValueError(f"protocol version {version} is not supported "
                         f"(this reader speaks {PROTO_VERSION})")
    if length != len(buf):
        raise ValueError(f"header says {length} bytes but {len(buf)} arrived")
    if reserved != 0:
        raise ValueError("reserved header field is not zero")
    return mtype


def name_field(name, what, may_be_empty=False):
    """Encodes a stream or group name for a char[NAME_MAX_LEN] field with
    the checks of proto_check_name."""
    raw = name.encode() if isinstance(name, str) else bytes(name)
    if len(raw) >= NAME_MAX_LEN or (not raw and not may_be_empty):
        raise ValueError(f"{what} name must be 1 to {NAME_MAX_LEN - 1} "
                         f"characters")
    ok = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
    if raw.strip(ok):
        raise ValueError(f"{what} name {name!r} may only use letters, digits, "
                         f"'_', '.' and '-'")
    return raw


def subscribe_request(stream, group, batch_size, max_delay_us, batch_slots,
                      policy, min_turn, flags, games, players):
    """Packs a MSG_SUBSCRIBE with its filter ids."""
    ids = list(games) + list(players)
    length = MSG_SUBSCRIBE_S.size + 4 * len(ids)
    return (MSG_SUBSCRIBE_S.pack(PROTO_MAGIC, PROTO_VERSION, MSG_SUBSCRIBE,
                                 length, 0, stream, group, batch_size,
                                 max_delay_us, batch_slots, policy, min_turn,
                                 flags, len(games), len(players))
            + struct.pack(f"<{len(ids)}I", *ids))


def error_reply(buf):
    """Decodes a MSG_ERROR: (errno, text)."""
    if len(buf) < MSG_ERROR_S.size:
        return _errno.EPROTO, "malformed error reply from broker"
    *_, err, text_len = MSG_ERROR_S.unpack_from(buf)
    if text_len != len(buf) - MSG_ERROR_S.size:
        return _errno.EPROTO, "malformed error reply from broker"
    if not 0 < err < 4096:
        err = _errno.EPROTO
    return err, bytes(buf[MSG_ERROR_S.size:]).decode(errors="replace")


def cstr(raw):
    """A NUL-terminated char array as str; None when it has no NUL."""
    end = raw.find(b"\0")
    return None if end < 0 else raw[:end].decode(errors="replace")
