/* value_text.c — record values as JSON or as short numpy-like text
 * (value_text.h). */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "value_text.h"

/* IEEE half to float: sign, 5-bit exponent, 10-bit fraction. */
static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f,
		 frac = h & 0x3ff, bits;
	float f;

	if (exp == 0) {
		f = ldexpf((float)frac, -24); /* subnormal or zero */
		return sign ? -f : f;
	}
	if (exp == 31)
		bits = sign | 0x7f800000u | (frac << 13);
	else
		bits = sign | ((exp + 112) << 23) | (frac << 13);
	memcpy(&f, &bits, sizeof(f));
	return f;
}

static double load_float(enum expbus_dtype t, const unsigned char *p)
{
	switch (t) {
	case EXPBUS_DTYPE_F16: {
		uint16_t h;
		memcpy(&h, p, 2);
		return half_to_float(h);
	}
	case EXPBUS_DTYPE_F32: {
		float f;
		memcpy(&f, p, 4);
		return f;
	}
	default: {
		double d;
		memcpy(&d, p, 8);
		return d;
	}
	}
}

/* One element at p; json: JSON spelling, else numpy-like. */
static void element(FILE *out, enum expbus_dtype t, const unsigned char *p,
		    bool json)
{
	union {
		int8_t i8;
		uint8_t u8;
		int16_t i16;
		uint16_t u16;
		int32_t i32;
		uint32_t u32;
		int64_t i64;
		uint64_t u64;
	} v;

	memcpy(&v, p, expbus_dtype_size(t));
	switch (t) {
	case EXPBUS_DTYPE_BOOL:
		fputs(v.u8 ? (json ? "true" : "True")
			   : (json ? "false" : "False"),
		      out);
		break;
	case EXPBUS_DTYPE_I8:
		fprintf(out, "%d", v.i8);
		break;
	case EXPBUS_DTYPE_U8:
		fprintf(out, "%u", v.u8);
		break;
	case EXPBUS_DTYPE_I16:
		fprintf(out, "%d", v.i16);
		break;
	case EXPBUS_DTYPE_U16:
		fprintf(out, "%u", v.u16);
		break;
	case EXPBUS_DTYPE_I32:
		fprintf(out, "%" PRId32, v.i32);
		break;
	case EXPBUS_DTYPE_U32:
		fprintf(out, "%" PRIu32, v.u32);
		break;
	case EXPBUS_DTYPE_I64:
		fprintf(out, "%" PRId64, v.i64);
		break;
	case EXPBUS_DTYPE_U64:
		fprintf(out, "%" PRIu64, v.u64);
		break;
	case EXPBUS_DTYPE_F16:
	case EXPBUS_DTYPE_F32:
	case EXPBUS_DTYPE_F64: {
		double d = load_float(t, p);
		if (json && !isfinite(d))
			fputs("null", out);
		else if (json)
			/* Enough digits to read back the same value. */
			fprintf(out, "%.*g",
				t == EXPBUS_DTYPE_F64	? 17
				: t == EXPBUS_DTYPE_F32 ? 9
							: 5,
				d);
		else
			fprintf(out, "%.4g", d);
		break;
	}
	}
}

/* Dimension d of an array at p (row-major); stride: bytes per item of
 * dimension d. edge 0: every item. */
static void array(FILE *out, const struct expbus_column *col, uint32_t d,
		  const unsigned char *p, size_t stride, uint32_t edge,
		  bool json)
{
	const uint32_t n = col->shape[d];
	const size_t esize = expbus_dtype_size(col->dtype);
	const size_t inner = d + 1 < col->ndim ? stride / n : esize;
	/* Outer dimensions show one item at each end, so that a cell of an
	 * image-like field stays on one line. */
	const uint32_t e = edge && d + 1 < col->ndim ? 1 : edge;

	fputc('[', out);
	for (uint32_t k = 0; k < n; k++) {
		if (e && n > 2 * e && k == e) {
			fputs(" ...", out);
			k = n - e;
		}
		if (k)
			fputs(json ? ", " : " ", out);
		if (d + 1 < col->ndim)
			array(out, col, d + 1, p + k * inner, inner, edge,
			      json);
		else
			element(out, col->dtype, p + k * esize, json);
	}
	fputc(']', out);
}

void value_json(FILE *out, const struct expbus_column *col, uint32_t i)
{
	const unsigned char *p =
	    (const unsigned char *)col->data + (size_t)i * col->elem_size;

	if (col->ndim == 0)
		element(out, col->dtype, p, true);
	else
		array(out, col, 0, p, col->elem_size, 0, true);
}

void value_short(FILE *out, const struct expbus_column *col, uint32_t i,
		 uint32_t edge)
{
	const unsigned char *p =
	    (const unsigned char *)col->data + (size_t)i * col->elem_size;

	if (col->ndim == 0)
		element(out, col->dtype, p, false);
	else
		array(out, col, 0, p, col->elem_size, edge, false);
}
