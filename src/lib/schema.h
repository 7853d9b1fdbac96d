/* schema.h — stream schemas: parse the text form, give the canonical form
 * and its XXH3 hash, lay the fields out in a record, and explain how two
 * schemas differ.
 *
 * Text form: fields separated by ';' or newlines, each "name dtype" or
 * "name dtype[d0,d1,...]" (a ':' after the name is allowed), e.g.
 *   "obs f32[9,20,20]; action i32; reward f32; mask u8[400]"
 * Canonical form: "name dtype[d0,d1]" joined by "; ", no other spaces,
 * scalars without brackets. */
#ifndef EXPBUS_SCHEMA_H
#define EXPBUS_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"

#define SCHEMA_TEXT_MAX	       8192 /* canonical text, with the NUL */
#define SCHEMA_FIELD_MAX_BYTES (64u << 20)
#define SCHEMA_DATA_MAX_BYTES  (64u << 20)

struct schema_field {
	char name[NAME_MAX_LEN];
	enum expbus_dtype dtype;
	uint32_t ndim; /* 0 for a scalar */
	uint32_t shape[EXPBUS_MAX_DIMS];
	uint32_t elem_size; /* bytes of this field per record */
	uint32_t offset;    /* within the record's data; aligned to dtype */
};

struct schema {
	uint32_t nfields;
	uint32_t data_size; /* bytes of all fields, a multiple of 8 */
	uint64_t hash;	    /* XXH3-64 of the canonical text */
	struct schema_field fields[MAX_FIELDS];
};

/* Parses text into s (fields, offsets, data_size, hash). Returns 0, or
 * -EINVAL with a message in err naming the field and what is wrong (unknown
 * dtype, bad name, reserved name, duplicate, bad shape, too large, ...). */
int schema_parse(const char *text, struct schema *s, char *err, size_t errlen);

/* Writes the canonical text. Returns its length, or -ENOSPC. */
int schema_format(const struct schema *s, char *buf, size_t len);

/* Index of the field called name, or -ENOENT. */
int schema_find(const struct schema *s, const char *name);

/* 0 when have and want are the same schema; otherwise 1 and a message in
 * msg naming the first difference, e.g. "field 'obs' is f32[9,20,20] in
 * the stream but f32[9,20,21] in the request", "field 'mask' is missing
 * from the request", "the request has an extra field 'x'", "field 'a' is
 * at position 2 in the stream but 1 in the request". */
int schema_diff(const struct schema *have, const struct schema *want, char *msg,
		size_t len);

/* Names the header columns carry; a field may not use them. */
int schema_name_is_reserved(const char *name);

/* Writes "f32[9,20,20]" (or "i32") for field f. Returns length or -ENOSPC. */
int schema_field_type(const struct schema_field *f, char *buf, size_t len);

#endif
