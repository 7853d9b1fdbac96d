/* fuzz_schema.c — the schema parser on any text a producer can send.
 * Properties: no memory error; a refusal always says why; an accepted
 * schema has a canonical form that parses back to the same fields, offsets
 * and hash, lays its fields out inside data_size within the limits, and
 * differs from itself in nothing. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "schema.h"

static void check(int ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct schema *s, *again;
	char err[512], *text, *canon;
	int n;

	/* The broker refuses longer text before parsing it. */
	if (size >= SCHEMA_TEXT_MAX)
		return 0;
	text = malloc(size + 1);
	s = malloc(sizeof(*s));
	again = malloc(sizeof(*again));
	canon = malloc(SCHEMA_TEXT_MAX);
	check(text && s && again && canon);
	memcpy(text, data, size);
	text[size] = '\0';
	err[0] = '\0';
	if (schema_parse(text, s, err, sizeof(err)) < 0) {
		check(err[0] != '\0');
		goto out;
	}
	check(s->nfields >= 1 && s->nfields <= MAX_FIELDS);
	check(s->data_size % 8 == 0 && s->data_size <= SCHEMA_DATA_MAX_BYTES);
	for (uint32_t i = 0; i < s->nfields; i++) {
		const struct schema_field *f = &s->fields[i];
		size_t el = expbus_dtype_size(f->dtype);

		check(el > 0 && f->offset % el == 0);
		check((uint64_t)f->offset + f->elem_size <= s->data_size);
		check(f->ndim <= EXPBUS_MAX_DIMS);
		check(memchr(f->name, '\0', NAME_MAX_LEN) != NULL);
		check(schema_find(s, f->name) == (int)i);
	}
	n = schema_format(s, canon, SCHEMA_TEXT_MAX);
	check(n > 0 && (size_t)n == strlen(canon));
	check(schema_parse(canon, again, err, sizeof(err)) == 0);
	check(again->hash == s->hash && again->nfields == s->nfields &&
	      again->data_size == s->data_size);
	check(schema_diff(s, again, err, sizeof(err)) == 0);
out:
	free(canon);
	free(again);
	free(s);
	free(text);
	return 0;
}
