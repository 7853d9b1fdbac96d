/* schema.c — stream schemas: parse the text form, lay fields out in a
 * record, write the canonical form and its hash, explain differences. */
#include "schema.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#define DTYPE_LIST    "bool, i8, u8, i16, u16, i32, u32, i64, u64, f16, f32, f64"
#define RESERVED_LIST "seq, timestamp, source, game, player, turn, flags"
#define QUOTE_MAX     40 /* bytes of an input token shown in an error */

struct dtype_info {
	const char *name;
	size_t size;
};

/* Indexed by enum expbus_dtype; index 0 is not a dtype. */
static const struct dtype_info dtypes[] = {
    [EXPBUS_DTYPE_BOOL] = {"bool", 1}, [EXPBUS_DTYPE_I8] = {"i8", 1},
    [EXPBUS_DTYPE_U8] = {"u8", 1},     [EXPBUS_DTYPE_I16] = {"i16", 2},
    [EXPBUS_DTYPE_U16] = {"u16", 2},   [EXPBUS_DTYPE_I32] = {"i32", 4},
    [EXPBUS_DTYPE_U32] = {"u32", 4},   [EXPBUS_DTYPE_I64] = {"i64", 8},
    [EXPBUS_DTYPE_U64] = {"u64", 8},   [EXPBUS_DTYPE_F16] = {"f16", 2},
    [EXPBUS_DTYPE_F32] = {"f32", 4},   [EXPBUS_DTYPE_F64] = {"f64", 8},
};
#define NDTYPES (sizeof(dtypes) / sizeof(dtypes[0]))

/* The header columns of every batch (expbus_batch_column). */
static const char *const reserved_names[] = {
    "seq", "timestamp", "source", "game", "player", "turn", "flags",
};

EXPBUS_API size_t expbus_dtype_size(enum expbus_dtype dtype)
{
	if ((unsigned)dtype >= NDTYPES)
		return 0;
	return dtypes[dtype].size;
}

EXPBUS_API const char *expbus_dtype_name(enum expbus_dtype dtype)
{
	if ((unsigned)dtype >= NDTYPES)
		return NULL;
	return dtypes[dtype].name;
}

int schema_name_is_reserved(const char *name)
{
	for (size_t i = 0;
	     i < sizeof(reserved_names) / sizeof(reserved_names[0]); i++)
		if (strcmp(name, reserved_names[i]) == 0)
			return 1;
	return 0;
}

/* ------------------------------------------------------------------------
 * Output: a buffer that keeps counting past its end, so that callers learn
 * the length they needed and the text stays NUL-terminated.
 * ------------------------------------------------------------------------ */

struct out {
	char *buf;
	size_t len;
	size_t pos; /* bytes wanted so far, may exceed len */
};

__attribute__((format(printf, 2, 3))) static void
out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	if (o->pos < o->len)
		n = vsnprintf(o->buf + o->pos, o->len - o->pos, fmt, ap);
	else
		n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->pos += (size_t)n;
}

/* Length written, or -ENOSPC when it (with its NUL) did not fit. */
static int out_finish(const struct out *o)
{
	if (o->len == 0 || o->pos >= o->len || o->pos > INT32_MAX)
		return -ENOSPC;
	return (int)o->pos;
}

static void out_type(struct out *o, const struct schema_field *f)
{
	const char *name = expbus_dtype_name(f->dtype);

	out_printf(o, "%s", name ? name : "?");
	if (f->ndim == 0)
		return;
	for (uint32_t i = 0; i < f->ndim && i < EXPBUS_MAX_DIMS; i++)
		out_printf(o, "%c%u", i ? ',' : '[', f->shape[i]);
	out_printf(o, "]");
}

int schema_field_type(const struct schema_field *f, char *buf, size_t len)
{
	struct out o = {buf, len, 0};

	if (len > 0)
		buf[0] = '\0';
	out_type(&o, f);
	return out_finish(&o);
}

int schema_format(const struct schema *s, char *buf, size_t len)
{
	struct out o = {buf, len, 0};

	if (len > 0)
		buf[0] = '\0';
	for (uint32_t i = 0; i < s->nfields && i < MAX_FIELDS; i++) {
		out_printf(&o, "%s%s ", i ? "; " : "", s->fields[i].name);
		out_type(&o, &s->fields[i]);
	}
	return out_finish(&o);
}

int schema_find(const struct schema *s, const char *name)
{
	for (uint32_t i = 0; i < s->nfields && i < MAX_FIELDS; i++)
		if (strcmp(s->fields[i].name, name) == 0)
			return (int)i;
	return -ENOENT;
}

/* ------------------------------------------------------------------------
 * Parsing. The text is cut into fields at ';' and newlines; each field is
 * parsed within its bounds [p, end), never looking past end.
 * ------------------------------------------------------------------------ */

struct cursor {
	const char *p;
	const char *end;
};

/* What parse errors need to say where they are. */
struct parse_ctx {
	char *err;
	size_t errlen;
	unsigned pos;	  /* 1-based position of the field being parsed */
	const char *name; /* its name once known to be valid, else NULL */
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
	return is_name_start(c) || is_digit(c);
}

static void skip_space(struct cursor *c)
{
	while (c->p < c->end && is_space(*c->p))
		c->p++;
}

/* Copies token [p, p + n) into out for an error message: garbage input
 * must not put control bytes or a whole megabyte into the message. */
static const char *quote(const char *p, size_t n, char out[QUOTE_MAX])
{
	size_t max = QUOTE_MAX - 4, i;

	for (i = 0; i < n && i < max; i++) {
		unsigned char ch = (unsigned char)p[i];

		out[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	if (n > max) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/* Writes "field 'obs': <message>" (or "field 3: ..." while the name is not
 * known to be good) into err. Always returns -EINVAL. */
__attribute__((format(printf, 2, 3))) static int
fail(const struct parse_ctx *ctx, const char *fmt, ...)
{
	struct out o = {ctx->err, ctx->errlen, 0};
	char msg[256];
	va_list ap;

	if (!ctx->err || ctx->errlen == 0)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ctx->name)
		out_printf(&o, "field '%s': %s", ctx->name, msg);
	else if (ctx->pos)
		out_printf(&o, "field %u: %s", ctx->pos, msg);
	else
		out_printf(&o, "%s", msg);
	return -EINVAL;
}

/* The token up to whitespace or any of the bytes in stop. */
static size_t token_len(const struct cursor *c, const char *stop)
{
	const char *q = c->p;

	while (q < c->end && !is_space(*q) && !strchr(stop, *q))
		q++;
	return (size_t)(q - c->p);
}

static int parse_name(struct parse_ctx *ctx, struct cursor *c,
		      const struct schema *s, struct schema_field *f)
{
	size_t n = token_len(c, ":");
	char q[QUOTE_MAX];

	quote(c->p, n, q);
	if (n == 0)
		return fail(ctx, "missing name before ':'");
	if (!is_name_start(c->p[0]))
		return fail(
		    ctx, "bad name '%s' (a name starts with a letter or '_')",
		    q);
	for (size_t i = 1; i < n; i++)
		if (!is_name_char(c->p[i]))
			return fail(
			    ctx,
			    "bad name '%s' (a name holds only letters, digits and '_')",
			    q);
	if (n >= NAME_MAX_LEN)
		return fail(
		    ctx, "name '%s' is too long (%zu characters, at most %d)",
		    q, n, NAME_MAX_LEN - 1);
	memcpy(f->name, c->p, n);
	f->name[n] = '\0';
	c->p += n;

	if (schema_name_is_reserved(f->name))
		return fail(
		    ctx,
		    "name '%s' is reserved for a header column (" RESERVED_LIST
		    ")",
		    f->name);
	int dup = schema_find(s, f->name);
	if (dup >= 0)
		return fail(ctx, "duplicate name '%s' (already field %d)",
			    f->name, dup + 1);
	/* Every later message names the field by its name. */
	ctx->name = f->name;
	return 0;
}

static int parse_dtype(struct parse_ctx *ctx, struct cursor *c,
		       struct schema_field *f)
{
	size_t n = token_len(c, "[");
	char q[QUOTE_MAX];

	if (n == 0)
		return fail(ctx,
			    "missing dtype (expected one of " DTYPE_LIST ")");
	for (size_t i = 1; i < NDTYPES; i++) {
		if (strlen(dtypes[i].name) == n &&
		    memcmp(dtypes[i].name, c->p, n) == 0) {
			f->dtype = (enum expbus_dtype)i;
			c->p += n;
			return 0;
		}
	}
	return fail(ctx, "unknown dtype '%s' (expected one of " DTYPE_LIST ")",
		    quote(c->p, n, q));
}

/* One dimension: digits only (no sign), 1 to UINT32_MAX. */
static int parse_dim(struct parse_ctx *ctx, struct cursor *c, uint32_t *dim)
{
	size_t n = token_len(c, ",]");
	uint64_t v = 0;
	char q[QUOTE_MAX];

	quote(c->p, n, q);
	if (n == 0)
		return fail(
		    ctx,
		    "empty dimension in the shape (expected an integer >= 1)");
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(c->p[i]))
			return fail(
			    ctx,
			    "bad dimension '%s' (expected an integer >= 1)", q);
		/* v <= UINT32_MAX before this step, so this cannot overflow. */
		v = v * 10 + (uint64_t)(c->p[i] - '0');
		if (v > UINT32_MAX)
			return fail(ctx,
				    "dimension '%s' is too large (at most %u)",
				    q, UINT32_MAX);
	}
	if (v == 0)
		return fail(ctx, "dimension '%s' must be at least 1", q);
	*dim = (uint32_t)v;
	c->p += n;
	return 0;
}

/* "[d0,d1,...]" with c at the '['. */
static int parse_shape(struct parse_ctx *ctx, struct cursor *c,
		       struct schema_field *f)
{
	const char *open = c->p;
	char q[QUOTE_MAX];
	int r;

	c->p++;
	skip_space(c);
	if (c->p < c->end && *c->p == ']')
		return fail(
		    ctx, "empty shape '[]' (write a scalar without brackets)");
	for (;;) {
		skip_space(c);
		if (f->ndim == EXPBUS_MAX_DIMS)
			return fail(ctx,
				    "too many dimensions in '%s' (at most %d)",
				    quote(open, (size_t)(c->end - open), q),
				    EXPBUS_MAX_DIMS);
		r = parse_dim(ctx, c, &f->shape[f->ndim]);
		if (r < 0)
			return r;
		f->ndim++;
		skip_space(c);
		if (c->p >= c->end)
			return fail(ctx, "unclosed '[' in '%s'",
				    quote(open, (size_t)(c->end - open), q));
		if (*c->p == ']')
			break;
		if (*c->p != ',')
			return fail(
			    ctx,
			    "bad shape '%s' (expected ',' or ']' after a dimension)",
			    quote(open, (size_t)(c->end - open), q));
		c->p++;
	}
	c->p++;
	return 0;
}

/* Sets f's size and offset after the fields already in s. */
static int place_field(struct parse_ctx *ctx, struct schema_field *f,
		       uint64_t *end)
{
	uint64_t size = expbus_dtype_size(f->dtype);
	uint64_t bytes = size;
	char type[160];

	schema_field_type(f, type, sizeof(type));
	/* bytes stays <= 64 MiB before each multiply by at most 2^32, so
	 * the 64-bit product cannot overflow. */
	for (uint32_t i = 0; i < f->ndim; i++) {
		bytes *= f->shape[i];
		if (bytes > SCHEMA_FIELD_MAX_BYTES)
			return fail(
			    ctx,
			    "%s is too large (more than %u bytes per record)",
			    type, SCHEMA_FIELD_MAX_BYTES);
	}
	uint64_t offset = align_up(*end, size);
	if (offset + bytes > SCHEMA_DATA_MAX_BYTES)
		return fail(ctx, "%s takes the record past %u bytes of data",
			    type, SCHEMA_DATA_MAX_BYTES);
	f->elem_size = (uint32_t)bytes;
	f->offset = (uint32_t)offset;
	*end = offset + bytes;
	return 0;
}

/* Parses the field in [p, end); a blank one adds nothing. */
static int parse_field(struct parse_ctx *ctx, const char *p, const char *end,
		       struct schema *s, uint64_t *data_end)
{
	struct cursor c = {p, end};
	struct schema_field *f;
	char q[QUOTE_MAX];
	int r;

	skip_space(&c);
	if (c.p == c.end)
		return 0;
	ctx->pos = s->nfields + 1;
	ctx->name = NULL;
	if (s->nfields == MAX_FIELDS)
		return fail(ctx, "too many fields (at most %d)", MAX_FIELDS);
	f = &s->fields[s->nfields];
	memset(f, 0, sizeof(*f));

	r = parse_name(ctx, &c, s, f);
	if (r < 0)
		return r;
	skip_space(&c);
	if (c.p < c.end && *c.p == ':') {
		c.p++;
		skip_space(&c);
	}
	r = parse_dtype(ctx, &c, f);
	if (r < 0)
		return r;
	skip_space(&c);
	if (c.p < c.end && *c.p == '[') {
		r = parse_shape(ctx, &c, f);
		if (r < 0)
			return r;
		skip_space(&c);
	}
	if (c.p < c.end)
		return fail(
		    ctx,
		    "unexpected '%s' after the type (separate fields with ';')",
		    quote(c.p, (size_t)(c.end - c.p), q));
	r = place_field(ctx, f, data_end);
	if (r < 0)
		return r;
	s->nfields++;
	return 0;
}

static int finish_schema(struct parse_ctx *ctx, struct schema *s,
			 uint64_t data_end)
{
	char text[SCHEMA_TEXT_MAX];
	int n;

	ctx->pos = 0;
	ctx->name = NULL;
	if (s->nfields == 0)
		return fail(
		    ctx,
		    "empty schema (expected fields such as 'obs f32[4]; action i32')");
	data_end = align_up(data_end, 8);
	if (data_end > SCHEMA_DATA_MAX_BYTES)
		return fail(ctx, "record data of %llu bytes is more than %u",
			    (unsigned long long)data_end,
			    SCHEMA_DATA_MAX_BYTES);
	s->data_size = (uint32_t)data_end;
	n = schema_format(s, text, sizeof(text));
	if (n < 0)
		return fail(
		    ctx,
		    "schema too long (its canonical text exceeds %d bytes)",
		    SCHEMA_TEXT_MAX - 1);
	s->hash = XXH3_64bits(text, (size_t)n);
	return 0;
}

int schema_parse(const char *text, struct schema *s, char *err, size_t errlen)
{
	struct parse_ctx ctx = {err, errlen, 0, NULL};
	uint64_t data_end = 0;
	const char *p = text;
	int r;

	if (err && errlen)
		err[0] = '\0';
	memset(s, 0, sizeof(*s));
	for (;;) {
		const char *end = p + strcspn(p, ";\n");

		r = parse_field(&ctx, p, end, s, &data_end);
		if (r < 0)
			return r;
		if (*end == '\0')
			break;
		p = end + 1;
	}
	return finish_schema(&ctx, s, data_end);
}

/* ------------------------------------------------------------------------
 * Comparing two schemas
 * ------------------------------------------------------------------------ */

static bool same_type(const struct schema_field *a,
		      const struct schema_field *b)
{
	if (a->dtype != b->dtype || a->ndim != b->ndim)
		return false;
	for (uint32_t i = 0; i < a->ndim && i < EXPBUS_MAX_DIMS; i++)
		if (a->shape[i] != b->shape[i])
			return false;
	return true;
}

/* Walks both schemas position by position; at the first position where they
 * disagree, a field only the stream has is missing, one only the request
 * has is extra, one both have elsewhere has moved. */
int schema_diff(const struct schema *have, const struct schema *want, char *msg,
		size_t len)
{
	uint32_t nh = have->nfields < MAX_FIELDS ? have->nfields : MAX_FIELDS;
	uint32_t nw = want->nfields < MAX_FIELDS ? want->nfields : MAX_FIELDS;
	struct out o = {msg, msg ? len : 0, 0};
	char th[160], tw[160];

	if (o.len)
		msg[0] = '\0';
	for (uint32_t i = 0; i < nh || i < nw; i++) {
		const struct schema_field *h = i < nh ? &have->fields[i] : NULL;
		const struct schema_field *w = i < nw ? &want->fields[i] : NULL;

		if (h && w && strcmp(h->name, w->name) == 0) {
			if (same_type(h, w))
				continue;
			schema_field_type(h, th, sizeof(th));
			schema_field_type(w, tw, sizeof(tw));
			out_printf(
			    &o,
			    "field '%s' is %s in the stream but %s in the request",
			    h->name, th, tw);
			return 1;
		}
		int wi = h ? schema_find(want, h->name) : -ENOENT;
		int hi = w ? schema_find(have, w->name) : -ENOENT;
		if (h && wi < 0)
			out_printf(&o, "field '%s' is missing from the request",
				   h->name);
		else if (w && hi < 0)
			out_printf(&o, "the request has an extra field '%s'",
				   w->name);
		else if (h && w)
			out_printf(
			    &o,
			    "field '%s' is at position %u in the stream but %d in the request",
			    h->name, i + 1, wi + 1);
		else /* only with duplicate names, which parsing refuses */
			out_printf(
			    &o, "the stream has %u fields but the request %u",
			    nh, nw);
		return 1;
	}
	return 0;
}
