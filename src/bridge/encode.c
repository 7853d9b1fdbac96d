/* encode.c — a local batch as ExperienceBatch bytes (proto/expbus.proto),
 * written by hand: the columns are copied once from the mapped batch into
 * the message (or lz4-compressed straight from it), with no intermediate
 * message struct and no second copy. Lengths whose value is known only
 * after compressing are written as 5-byte varints (a non-minimal encoding
 * every protobuf parser accepts), reserved before and filled after. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <xxhash.h>
#ifdef HAVE_XXH_X86DISPATCH
#include <xxh_x86dispatch.h> /* XXH3_64bits: the AVX2/AVX-512 one */
#endif

#include "bridge.h"

/* Wire types and field tags of proto/expbus.proto. */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2 };
#define TAG(field, wt) ((uint32_t)(field) << 3 | (wt))

enum {
	B_SUBSCRIPTION_ID = 1,
	B_SCHEMA_HASH = 2,
	B_COUNT = 3,
	B_POSITION = 4,
	B_SEQ = 5,
	B_FLUSH_REASON = 6,
	B_DROPPED_TOTAL = 7,
	B_LOST_TOTAL = 8,
	B_PUBLISH_NS = 9,
	B_COLUMNS = 10,
	B_SCHEMA = 11,
};
enum {
	C_NAME = 1,
	C_DTYPE = 2,
	C_SHAPE = 3,
	C_ELEM_SIZE = 4,
	C_DATA = 5,
	C_COMPRESSION = 6,
	C_UNCOMPRESSED_SIZE = 7,
	C_XXH3 = 8,
};

#define LEN5 5 /* bytes of a padded length varint */

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* A length (< 2^32) as exactly LEN5 bytes. */
static void put_len5(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < LEN5 - 1; i++, v >>= 7)
		p[i] = (uint8_t)(v | 0x80);
	p[LEN5 - 1] = (uint8_t)v;
}

static uint8_t *put_fixed64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		*p++ = (uint8_t)v;
	return p;
}

static uint8_t *put_u64(uint8_t *p, uint32_t field, uint64_t v)
{
	if (!v)
		return p; /* proto3: zero is the default, not sent */
	p = put_varint(p, TAG(field, WT_VARINT));
	return put_varint(p, v);
}

static uint8_t *put_bytes(uint8_t *p, uint32_t field, const void *s, size_t n)
{
	p = put_varint(p, TAG(field, WT_LEN));
	p = put_varint(p, n);
	memcpy(p, s, n);
	return p + n;
}

static size_t column_bound(const struct expbus_column *col, uint32_t count,
			   enum bridge_compression comp)
{
	size_t used = (size_t)count * col->elem_size;
	size_t data =
	    comp == COMP_LZ4 ? (size_t)LZ4_compressBound((int)used) : used;

	/* name + dtype + shape + scalars + data, each with tag and length */
	return 2 * 64 + EXPBUS_MAX_DIMS * 6 + 64 + data + LEN5 * 2;
}

static uint8_t *put_column(uint8_t *p, const char *name,
			   const struct expbus_column *col, uint32_t count,
			   enum bridge_compression comp)
{
	size_t used = (size_t)count * col->elem_size;
	const char *dtype = expbus_dtype_name(col->dtype);
	uint8_t shape[EXPBUS_MAX_DIMS * 5], *sp = shape, *len_at, *start;

	p = put_varint(p, TAG(B_COLUMNS, WT_LEN));
	len_at = p;
	p += LEN5;
	start = p;
	p = put_bytes(p, C_NAME, name, strlen(name));
	p = put_bytes(p, C_DTYPE, dtype ? dtype : "",
		      dtype ? strlen(dtype) : 0);
	for (uint32_t d = 0; d < col->ndim && d < EXPBUS_MAX_DIMS; d++)
		sp = put_varint(sp, col->shape[d]);
	if (sp > shape)
		p = put_bytes(p, C_SHAPE, shape, (size_t)(sp - shape));
	p = put_u64(p, C_ELEM_SIZE, col->elem_size);
	p = put_varint(p, TAG(C_DATA, WT_LEN));
	if (comp == COMP_LZ4 && used) {
		int n =
		    LZ4_compress_default(col->data, (char *)p + LEN5, (int)used,
					 LZ4_compressBound((int)used));
		put_len5(p, (uint32_t)n);
		p += LEN5 + n;
		p = put_u64(p, C_COMPRESSION, COMP_LZ4);
	} else {
		p = put_varint(p, used);
		memcpy(p, col->data, used);
		p += used;
	}
	p = put_u64(p, C_UNCOMPRESSED_SIZE, used);
	p = put_varint(p, TAG(C_XXH3, WT_I64));
	p = put_fixed64(p, XXH3_64bits(col->data, used));
	put_len5(len_at, (uint32_t)(p - start));
	return p;
}

int encode_batch(const struct expbus_consumer *c, const struct expbus_batch *b,
		 uint32_t count, uint64_t schema_hash,
		 enum bridge_compression comp, uint64_t seq, uint64_t position,
		 grpc_slice *out)
{
	int ncol = expbus_consumer_columns(c);
	struct expbus_column col;
	size_t bound = 128;
	uint8_t *buf, *p;

	for (int i = 0; i < ncol; i++) {
		if (expbus_batch_column_at(c, b, i, &col) == 0)
			bound += column_bound(&col, count, comp);
	}
	buf = malloc(bound);
	if (!buf)
		return -ENOMEM;
	p = put_varint(buf, TAG(B_SCHEMA_HASH, WT_I64));
	p = put_fixed64(p, schema_hash);
	p = put_u64(p, B_COUNT, count);
	p = put_u64(p, B_POSITION, position);
	p = put_u64(p, B_SEQ, seq);
	p = put_u64(p, B_FLUSH_REASON, b->flush_reason);
	p = put_u64(p, B_PUBLISH_NS, b->publish_ns);
	for (int i = 0; i < ncol; i++) {
		if (expbus_batch_column_at(c, b, i, &col) == 0)
			p = put_column(p, expbus_consumer_column_name(c, i),
				       &col, count, comp);
	}
	*out = grpc_slice_new(buf, (size_t)(p - buf), free);
	return 0;
}

grpc_slice encode_tail(const char *id, const char *schema, uint64_t dropped,
		       uint64_t lost)
{
	size_t idn = id ? strlen(id) : 0, sn = schema ? strlen(schema) : 0;
	uint8_t *buf = malloc(idn + sn + 64), *p = buf;

	if (!buf)
		return grpc_empty_slice();
	if (idn)
		p = put_bytes(p, B_SUBSCRIPTION_ID, id, idn);
	if (sn)
		p = put_bytes(p, B_SCHEMA, schema, sn);
	p = put_u64(p, B_DROPPED_TOTAL, dropped);
	p = put_u64(p, B_LOST_TOTAL, lost);
	return grpc_slice_new(buf, (size_t)(p - buf), free);
}
