#!/usr/bin/env python3
"""Writes the hand-made seeds of the fuzz corpora (valid messages and
schemas, and their edges) as tests/fuzz/corpus/<target>/seed_<name>; the
fuzzers' own finds sit beside them under hashed names."""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def hdr(t, n, magic=0x4d425845, ver=1, res=0):
    return struct.pack("<IHHII", magic, ver, t, n, res)


def name(s):
    return s.encode().ljust(64, b"\0")


def attach(stream, schema, slots=0, flags=0, schema_len=None):
    sch = schema.encode()
    sl = len(sch) if schema_len is None else schema_len
    body = name(stream) + struct.pack("<IIII", slots, flags, sl, 0) + sch
    return hdr(1, 16 + len(body)) + body


def sub(stream, group="", bs=0, delay=0, slots=0, pol=0, mt=0, fl=0,
        games=(), players=()):
    body = name(stream) + name(group) + struct.pack(
        "<8I", bs, delay, slots, pol, mt, fl, len(games), len(players))
    body += b"".join(struct.pack("<I", g) for g in list(games) + list(players))
    return hdr(2, 16 + len(body)) + body


def err(e, text, tl=None):
    t = text.encode()
    body = struct.pack("<iI", e, len(t) if tl is None else tl) + t
    return hdr(0xff, 16 + len(body)) + body


# fuzz_proto: the first byte is how many fds come along (mod 6).
PROTO = {
    "attach_ok": b"\0" + attach("demo", "obs f32[9,20,20]; action i32"),
    "attach_resume_one_fd": b"\1" + attach("demo", "x u8", flags=1),
    "attach_resume_no_fd": b"\0" + attach("demo", "x u8", flags=1),
    "attach_bad_len": b"\0" + attach("demo", "x u8", schema_len=999),
    "attach_bad_name": b"\0" + attach("de mo", "x u8"),
    "attach_name_unterminated": b"\0" + hdr(1, 96) + b"a" * 64
    + struct.pack("<IIII", 0, 0, 0, 0),
    "attach_two_fds": b"\2" + attach("demo", "x u8"),
    "subscribe_ok": b"\0" + sub("demo"),
    "subscribe_filter": b"\0" + sub("demo", "g", 32, 1000, 8, 1, 5, 1,
                                   games=(1, 2, 3), players=(0,)),
    "subscribe_bad_slots": b"\0" + sub("demo", slots=3),
    "subscribe_len_mismatch": b"\0" + sub("demo", games=(1,))[:-4],
    "subscribe_big_counts": b"\0" + hdr(2, 176) + name("demo") + name("")
    + struct.pack("<8I", 0, 0, 0, 0, 0, 0, 0xffffffff, 1),
    "stats": b"\0" + hdr(3, 16),
    "stats_with_fds": b"\4" + hdr(3, 16),
    "error_ok": b"\0" + err(22, "bad schema"),
    "error_bad_len": b"\0" + err(22, "x", tl=1000),
    "error_negative": b"\0" + err(-5, "neg"),
    "bad_magic": b"\0" + hdr(3, 16, magic=1),
    "bad_version": b"\0" + hdr(3, 16, ver=7),
    "bad_reserved": b"\0" + hdr(3, 16, res=1),
    "short": b"\0" + b"EXBM",
    "empty_with_fds": b"\3",
    "empty": b"\0",
    "unknown_type": b"\0" + hdr(0x42, 16),
    "too_big": b"\0" + hdr(3, 65540) + b"\0" * (65540 - 16),
}

FIELDS64 = ";".join(f"f{i} u8" for i in range(64))
SCHEMA = {
    "typical": "obs f32[9,20,20]; action i32; reward f32; mask u8[400]",
    "newlines": "obs: f32[4]\naction: i32\r\n",
    "all_dtypes": "a bool; b i8; c u8; d i16; e u16; f i32; g u32; h i64; "
    "i u64; j f16; k f32; l f64",
    "eight_dims": "x u8[1,2,3,4,5,6,7,8]",
    "nine_dims": "x u8[1,2,3,4,5,6,7,8,9]",
    "too_large": "x f64[1024,1024,16]",
    "at_limit": "x u8[67108864]",
    "overflow_dims": "x f64[4294967295,4294967295]",
    "reserved": "seq u64",
    "duplicate": "a u8; a u8",
    "empty": "",
    "only_separators": ";;;\n\n;",
    "bad_dtype": "a f128",
    "bad_name": "1a u8",
    "zero_dim": "a u8[0]",
    "unclosed": "a u8[3",
    "trailing": "a u8[3] extra",
    "spaces": "  a   u8 [ 2 , 3 ]  ;  b f32 ",
    "long_name": "a" * 70 + " u8",
    "leading_zero_dim": "a u8[007]",
    "negative_dim": "a u8[-1]",
    "empty_dims": "a u8[]",
    "comma_end": "a u8[2,]",
    "nul_inside": "a u8\0; b u8",
    "sixty_four_fields": FIELDS64,
    "sixty_five_fields": FIELDS64 + "; z u8",
}


def ring(magic=0x52425845, version=2, size=256 + 64 * 296, capacity=64,
         slot=296, data=264, producer_id=7, h=0x1234, offset=256, head=0, tail=0,
         seg_size=None, want_slot=296, want_data=264, want_h=0x1234):
    """A struct ring_copy then a struct ring_expect (fuzz_ring.c)."""
    seg_size = size if seg_size is None else seg_size
    return (struct.pack("<IIQIIIIQQQQ", magic, version, size, capacity,
                        slot, data, producer_id, h, offset, head, tail)
            + struct.pack("<QIIQII", seg_size, want_slot, want_data, want_h,
                          16, 1 << 24))


RING = {
    "valid_empty": ring(),
    "valid_full": ring(head=10, tail=74),
    "valid_wrapped": ring(head=2**64 - 10, tail=20),
    "tail_behind": ring(head=10, tail=9),
    "tail_too_far": ring(head=0, tail=65),
    "capacity_huge": ring(capacity=1 << 24),
    "capacity_odd": ring(capacity=48),
    "capacity_zero": ring(capacity=0),
    "slots_past_end": ring(capacity=128),
    "offset_moved": ring(offset=0),
    "size_lies": ring(size=1 << 30),
    "bad_magic": ring(magic=0),
    "bad_version": ring(version=1),
    "producer_id_zero": ring(producer_id=0),
    "other_schema": ring(h=0x9999),
    "overflow_product": ring(capacity=1 << 24, slot=2**32 - 8,
                             want_slot=2**32 - 8, size=2**64 - 1),
}


def write(target, seeds):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    for k, v in seeds.items():
        with open(os.path.join(d, "seed_" + k), "wb") as f:
            f.write(v if isinstance(v, bytes) else v.encode())


if __name__ == "__main__":
    write("proto", PROTO)
    write("schema", SCHEMA)
    write("ring", RING)
