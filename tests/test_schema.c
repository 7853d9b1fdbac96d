/* test_schema.c — schema parsing, layout, canonical form, hash, diff
 * messages and limits; garbage input must never crash the parser. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "schema.h"

static struct schema parse_ok(const char *text)
{
	struct schema s;
	char err[512];
	int r = schema_parse(text, &s, err, sizeof(err));

	cr_assert_eq(r, 0, "parse of \"%s\" failed: %s", text, err);
	return s;
}

static uint64_t hash_of(const char *text)
{
	return parse_ok(text).hash;
}

/* Parses text expecting -EINVAL, and checks err mentions each of want. */
static void parse_fails(const char *text, const char *want1, const char *want2)
{
	static struct schema s;
	char err[512];
	int r = schema_parse(text, &s, err, sizeof(err));

	cr_assert_eq(r, -EINVAL, "\"%s\" parsed (r=%d)", text, r);
	cr_assert(strlen(err) > 0, "no message for \"%s\"", text);
	if (want1)
		cr_assert(strstr(err, want1),
			  "message for \"%s\" lacks '%s': %s", text, want1,
			  err);
	if (want2)
		cr_assert(strstr(err, want2),
			  "message for \"%s\" lacks '%s': %s", text, want2,
			  err);
}

Test(schema, dtype_sizes_and_names)
{
	cr_assert_eq(expbus_dtype_size(EXPBUS_DTYPE_BOOL), 1);
	cr_assert_eq(expbus_dtype_size(EXPBUS_DTYPE_U16), 2);
	cr_assert_eq(expbus_dtype_size(EXPBUS_DTYPE_F16), 2);
	cr_assert_eq(expbus_dtype_size(EXPBUS_DTYPE_F32), 4);
	cr_assert_eq(expbus_dtype_size(EXPBUS_DTYPE_U64), 8);
	cr_assert_eq(expbus_dtype_size(EXPBUS_DTYPE_F64), 8);
	cr_assert_str_eq(expbus_dtype_name(EXPBUS_DTYPE_I8), "i8");
	cr_assert_str_eq(expbus_dtype_name(EXPBUS_DTYPE_F64), "f64");
	cr_assert_eq(expbus_dtype_size((enum expbus_dtype)0), 0);
	cr_assert_eq(expbus_dtype_size((enum expbus_dtype)13), 0);
	cr_assert_eq(expbus_dtype_size((enum expbus_dtype) - 1), 0);
	cr_assert_null(expbus_dtype_name((enum expbus_dtype)0));
	cr_assert_null(expbus_dtype_name((enum expbus_dtype)99));
}

Test(schema, realistic_schema_lays_out_fields_aligned_in_order)
{
	struct schema s = parse_ok("obs f32[9,20,20]; action i32; reward f32; "
				   "mask u8[400]; done bool; value f64; "
				   "legal u16[3]; step i64");

	cr_assert_eq(s.nfields, 8);
	cr_assert_str_eq(s.fields[0].name, "obs");
	cr_assert_eq(s.fields[0].dtype, EXPBUS_DTYPE_F32);
	cr_assert_eq(s.fields[0].ndim, 3);
	cr_assert_eq(s.fields[0].shape[0], 9);
	cr_assert_eq(s.fields[0].shape[2], 20);
	cr_assert_eq(s.fields[0].elem_size, 9 * 20 * 20 * 4);
	cr_assert_eq(s.fields[0].offset, 0);
	cr_assert_eq(s.fields[1].ndim, 0);
	cr_assert_eq(s.fields[1].elem_size, 4);
	cr_assert_eq(s.fields[1].offset, 14400);
	cr_assert_eq(s.fields[2].offset, 14404);
	cr_assert_eq(s.fields[3].offset, 14408);
	cr_assert_eq(s.fields[3].elem_size, 400);
	cr_assert_eq(s.fields[4].offset, 14808);
	cr_assert_eq(s.fields[4].elem_size, 1);
	/* 14809 rounded up to 8 for the f64 */
	cr_assert_eq(s.fields[5].offset, 14816);
	cr_assert_eq(s.fields[6].offset, 14824);
	cr_assert_eq(s.fields[6].elem_size, 6);
	/* 14830 rounded up to 8 for the i64 */
	cr_assert_eq(s.fields[7].offset, 14832);
	cr_assert_eq(s.data_size, 14840);
	for (uint32_t i = 0; i < s.nfields; i++)
		cr_assert_eq(s.fields[i].offset %
				 expbus_dtype_size(s.fields[i].dtype),
			     0, "field %u misaligned", i);
}

Test(schema, data_size_rounds_up_to_eight)
{
	struct schema s = parse_ok("a u8");

	cr_assert_eq(s.data_size, 8);
	s = parse_ok("a u8; b u16");
	cr_assert_eq(s.fields[1].offset, 2);
	cr_assert_eq(s.data_size, 8);
	s = parse_ok("a i32[3]");
	cr_assert_eq(s.data_size, 16);
}

Test(schema, canonical_form_normalises_spacing)
{
	const char *spellings[] = {
	    "obs f32[9,20,20]; action i32; reward f32",
	    "obs: f32[9,20,20]\naction: i32\nreward: f32\n",
	    "  obs:f32[ 9 , 20,20 ] ;\taction   i32;reward f32;;\n\n",
	    "obs f32 [9,20,20]\r\naction i32\r\nreward : f32\r\n",
	};
	char text[SCHEMA_TEXT_MAX];
	uint64_t h0 = 0;

	for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
		struct schema s = parse_ok(spellings[i]);
		int n = schema_format(&s, text, sizeof(text));

		cr_assert_eq(n, (int)strlen(text));
		cr_assert_str_eq(text,
				 "obs f32[9,20,20]; action i32; reward f32",
				 "spelling %zu", i);
		if (i == 0)
			h0 = s.hash;
		cr_assert_eq(s.hash, h0, "spelling %zu hashes differently", i);
	}
}

Test(schema, canonical_form_round_trips_to_the_same_hash)
{
	struct schema s = parse_ok("x u8[1,2,3,4,5,6,7,8]\n y bool;z f16[100]");
	char text[SCHEMA_TEXT_MAX];
	int n = schema_format(&s, text, sizeof(text));

	cr_assert_gt(n, 0);
	struct schema t = parse_ok(text);
	cr_assert_eq(t.hash, s.hash);
	cr_assert_eq(t.data_size, s.data_size);
	cr_assert_eq(schema_diff(&s, &t, NULL, 0), 0);
	cr_assert_str_eq(text, "x u8[1,2,3,4,5,6,7,8]; y bool; z f16[100]");
}

Test(schema, hash_is_xxh3_of_canonical_text)
{
	/* Other implementations (Python) must be able to compute it. */
	const char *canon = "obs f32[9,20,20]; a i32";
	struct schema s = parse_ok("obs:f32[9, 20,20]\n a   :  i32 ;");

	cr_assert_eq(s.hash, XXH3_64bits(canon, strlen(canon)));
}

Test(schema, hash_differs_when_anything_changes)
{
	const char *base = "obs f32[9,20,20]; action i32; reward f32";
	const char *variants[] = {
	    "obs f32[9,20,21]; action i32; reward f32",	      /* dim */
	    "obs f32[9,20]; action i32; reward f32",	      /* ndim */
	    "obs f32[9,20,20,1]; action i32; reward f32",     /* extra dim */
	    "obs f64[9,20,20]; action i32; reward f32",	      /* dtype */
	    "obs f32[9,20,20]; action u32; reward f32",	      /* dtype */
	    "obz f32[9,20,20]; action i32; reward f32",	      /* name */
	    "action i32; obs f32[9,20,20]; reward f32",	      /* order */
	    "obs f32[9,20,20]; action i32",		      /* fewer */
	    "obs f32[9,20,20]; action i32; reward f32; x u8", /* more */
	    "obs f32[20,9,20]; action i32; reward f32",	      /* dim order */
	};
	uint64_t h = hash_of(base);

	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
		cr_assert_neq(hash_of(variants[i]), h, "variant %zu", i);
}

Test(schema, unknown_dtype_names_field_and_token)
{
	parse_fails("obs f33[3]", "obs", "'f33'");
	parse_fails("a i32; obs: float", "obs", "'float'");
	parse_fails("obs F32", "obs", "'F32'");
	parse_fails("obs f32]", "obs", "'f32]'");
}

Test(schema, missing_dtype_is_refused)
{
	parse_fails("obs", "obs", "missing dtype");
	parse_fails("obs:", "obs", "missing dtype");
	parse_fails("obs [3]", "obs", "missing dtype");
}

Test(schema, bad_name_names_position_and_token)
{
	parse_fails("a i32; 3obs f32", "field 2", "'3obs'");
	parse_fails("ob-s f32", "field 1", "'ob-s'");
	parse_fails("obs[3] f32", "field 1", "'obs[3]'");
	parse_fails(": f32", "field 1", "missing name");
	parse_fails("é f32", "field 1", "bad name");
}

Test(schema, long_name_is_refused)
{
	char text[256];
	char name[NAME_MAX_LEN + 1];

	memset(name, 'n', NAME_MAX_LEN - 1);
	name[NAME_MAX_LEN - 1] = '\0';
	snprintf(text, sizeof(text), "%s u8", name);
	parse_ok(text);
	memset(name, 'n', NAME_MAX_LEN);
	name[NAME_MAX_LEN] = '\0';
	snprintf(text, sizeof(text), "%s u8", name);
	parse_fails(text, "field 1", "too long");
}

Test(schema, reserved_names_are_refused)
{
	const char *names[] = {"seq",	 "timestamp", "source", "game",
			       "player", "turn",      "flags"};

	for (size_t i = 0; i < 7; i++) {
		char text[64];

		cr_assert(schema_name_is_reserved(names[i]));
		snprintf(text, sizeof(text), "obs u8; %s i32", names[i]);
		parse_fails(text, names[i], "reserved");
	}
	cr_assert_not(schema_name_is_reserved("obs"));
	cr_assert_not(schema_name_is_reserved("Seq"));
	cr_assert_not(schema_name_is_reserved("turns"));
	parse_ok("Seq i32; turns i32");
}

Test(schema, duplicate_name_is_refused)
{
	parse_fails("obs f32; action i32; obs u8", "'obs'", "duplicate");
}

Test(schema, bad_shapes_name_field_and_token)
{
	parse_fails("obs f32[]", "obs", "[]");
	parse_fails("obs f32[ ]", "obs", "[]");
	parse_fails("obs f32[0]", "obs", "'0'");
	parse_fails("obs f32[-3]", "obs", "'-3'");
	parse_fails("obs f32[+3]", "obs", "'+3'");
	parse_fails("obs f32[3x]", "obs", "'3x'");
	parse_fails("obs f32[3,]", "obs", "empty dimension");
	parse_fails("obs f32[,3]", "obs", "empty dimension");
	parse_fails("obs f32[3", "obs", "unclosed");
	parse_fails("obs f32[3; a i32]", "obs", "unclosed");
	parse_fails("obs f32[3 4]", "obs", "'[3 4]'");
	parse_fails("obs f32[4294967296]", "obs", "'4294967296'");
	parse_fails("obs f32[99999999999999999999999]", "obs", "too large");
	parse_fails("obs f32[3] x", "obs", "'x'");
	parse_fails("obs f32[3][4]", "obs", "'[4]'");
	parse_fails("obs f32 i32", "obs", "'i32'");
}

Test(schema, empty_schema_is_refused)
{
	parse_fails("", "empty", NULL);
	parse_fails(" ; \n;\t\n", "empty", NULL);
}

Test(schema, trailing_separators_and_blank_lines_are_allowed)
{
	struct schema s = parse_ok("\n\na i32;\n\n b f32 ;;\n  \n");

	cr_assert_eq(s.nfields, 2);
	cr_assert_eq(s.hash, hash_of("a i32; b f32"));
}

Test(schema, max_fields_fit_and_one_more_fails)
{
	char text[4096];
	size_t n = 0;

	for (int i = 0; i < MAX_FIELDS; i++)
		n +=
		    (size_t)snprintf(text + n, sizeof(text) - n, "f%d u8; ", i);
	struct schema s = parse_ok(text);
	cr_assert_eq(s.nfields, MAX_FIELDS);
	cr_assert_eq(s.data_size, 64);
	snprintf(text + n, sizeof(text) - n, "extra i32");
	parse_fails(text, "too many fields", "field 65");
}

Test(schema, eight_dims_fit_and_nine_fail)
{
	struct schema s = parse_ok("x u8[1,2,1,2,1,2,1,2]");

	cr_assert_eq(s.fields[0].ndim, 8);
	cr_assert_eq(s.fields[0].elem_size, 16);
	parse_fails("x u8[1,1,1,1,1,1,1,1,1]", "'x'", "too many dimensions");
}

Test(schema, dims_whose_product_overflows_fail)
{
	parse_fails("x u8[4294967295,4294967295]", "'x'", "too large");
	parse_fails("x u64[4294967295,4294967295,4294967295,4294967295,"
		    "4294967295,4294967295,4294967295,4294967295]",
		    "'x'", "too large");
	parse_fails("x u8[65536,65536,65536,65536]", "'x'", "too large");
}

Test(schema, field_larger_than_limit_fails)
{
	char text[128];

	snprintf(text, sizeof(text), "big u8[%u]", SCHEMA_FIELD_MAX_BYTES);
	struct schema s = parse_ok(text);
	cr_assert_eq(s.fields[0].elem_size, SCHEMA_FIELD_MAX_BYTES);
	cr_assert_eq(s.data_size, SCHEMA_DATA_MAX_BYTES);
	snprintf(text, sizeof(text), "big u8[%u]", SCHEMA_FIELD_MAX_BYTES + 1);
	parse_fails(text, "'big'", "too large");
	snprintf(text, sizeof(text), "big f32[%u]", SCHEMA_FIELD_MAX_BYTES / 2);
	parse_fails(text, "'big'", "too large");
}

Test(schema, record_larger_than_limit_fails)
{
	char text[128];

	snprintf(text, sizeof(text), "a u8[%u]; b u8", SCHEMA_FIELD_MAX_BYTES);
	parse_fails(text, "'b'", NULL);
}

Test(schema, longest_possible_schema_fits_the_canonical_text)
{
	/* 64 fields, 63-character names, the longest dtype and eight dims:
	 * the byte limits keep the canonical text under SCHEMA_TEXT_MAX. */
	static char text[32768];
	char canon[SCHEMA_TEXT_MAX];
	size_t n = 0;

	for (int i = 0; i < MAX_FIELDS; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "n%062d bool[1,1,1,1,1,1,1,%d];", i,
				      i ? 1 : 100000);
	struct schema s = parse_ok(text);
	int len = schema_format(&s, canon, sizeof(canon));
	cr_assert_gt(len, 5000);
	cr_assert_lt(len, SCHEMA_TEXT_MAX);
	cr_assert_eq(parse_ok(canon).hash, s.hash);
}

Test(schema, leading_zeros_in_dims_are_dropped_in_canonical_form)
{
	cr_assert_eq(hash_of("a u8[007]"), hash_of("a u8[7]"));
}

Test(schema, err_may_be_null_and_is_always_terminated)
{
	struct schema s;
	char err[8];

	cr_assert_eq(schema_parse("obs f33", &s, NULL, 0), -EINVAL);
	memset(err, 'x', sizeof(err));
	cr_assert_eq(schema_parse("obs f33", &s, err, sizeof(err)), -EINVAL);
	cr_assert_eq(strlen(err), sizeof(err) - 1);
	cr_assert_eq(schema_parse("obs f32", &s, err, sizeof(err)), 0);
	cr_assert_str_eq(err, "");
}

Test(schema, find_returns_index_or_enoent)
{
	struct schema s = parse_ok("a i32; b f32; c u8");

	cr_assert_eq(schema_find(&s, "a"), 0);
	cr_assert_eq(schema_find(&s, "c"), 2);
	cr_assert_eq(schema_find(&s, "d"), -ENOENT);
	cr_assert_eq(schema_find(&s, ""), -ENOENT);
}

Test(schema, field_type_spells_dtype_and_shape)
{
	struct schema s = parse_ok("obs f32[9,20,20]; a i32");
	char buf[64];

	cr_assert_eq(schema_field_type(&s.fields[0], buf, sizeof(buf)), 12);
	cr_assert_str_eq(buf, "f32[9,20,20]");
	cr_assert_eq(schema_field_type(&s.fields[1], buf, sizeof(buf)), 3);
	cr_assert_str_eq(buf, "i32");
	cr_assert_eq(schema_field_type(&s.fields[0], buf, 12), -ENOSPC);
	cr_assert_eq(strlen(buf), 11);
	cr_assert_eq(schema_field_type(&s.fields[0], buf, 13), 12);
}

Test(schema, format_reports_enospc_with_a_tiny_buffer)
{
	struct schema s = parse_ok("obs f32[9,20,20]; action i32");
	const char *want = "obs f32[9,20,20]; action i32";
	char buf[64];

	memset(buf, 'x', sizeof(buf));
	cr_assert_eq(schema_format(&s, buf, 4), -ENOSPC);
	cr_assert_eq(buf[3], '\0');
	cr_assert_str_eq(buf, "obs");
	cr_assert_eq(schema_format(&s, buf, 1), -ENOSPC);
	cr_assert_str_eq(buf, "");
	cr_assert_eq(schema_format(&s, NULL, 0), -ENOSPC);
	cr_assert_eq(schema_format(&s, buf, strlen(want)), -ENOSPC);
	cr_assert_eq(schema_format(&s, buf, strlen(want) + 1),
		     (int)strlen(want));
	cr_assert_str_eq(buf, want);
}

static void diff_says(const char *have, const char *want, const char *msg)
{
	struct schema h = parse_ok(have), w = parse_ok(want);
	char buf[256];

	cr_assert_eq(schema_diff(&h, &w, buf, sizeof(buf)), 1,
		     "\"%s\" vs \"%s\"", have, want);
	cr_assert_str_eq(buf, msg);
}

Test(schema, diff_of_identical_schemas_is_zero)
{
	struct schema h = parse_ok("obs f32[9,20,20]; action i32");
	struct schema w = parse_ok("obs: f32[9, 20, 20]\naction: i32\n");
	char buf[128] = "junk";

	cr_assert_eq(schema_diff(&h, &w, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "");
	cr_assert_eq(schema_diff(&h, &w, NULL, 0), 0);
}

Test(schema, diff_names_field_with_changed_type)
{
	diff_says("obs f32[9,20,20]; action i32",
		  "obs f32[9,20,21]; action i32",
		  "field 'obs' is f32[9,20,20] in the stream but f32[9,20,21] "
		  "in the request");
	diff_says("obs f32[9,20,20]; action i32",
		  "obs f32[9,20,20]; action i64",
		  "field 'action' is i32 in the stream but i64 in the request");
	diff_says("a u8[4]", "a u8",
		  "field 'a' is u8[4] in the stream but u8 in the request");
}

Test(schema, diff_names_missing_field)
{
	diff_says("obs f32; mask u8[400]; reward f32", "obs f32; reward f32",
		  "field 'mask' is missing from the request");
	diff_says("obs f32; mask u8[400]", "obs f32",
		  "field 'mask' is missing from the request");
}

Test(schema, diff_names_extra_field)
{
	diff_says("obs f32; reward f32", "obs f32; x i32; reward f32",
		  "the request has an extra field 'x'");
	diff_says("obs f32", "obs f32; x i32",
		  "the request has an extra field 'x'");
}

Test(schema, diff_names_reordered_field)
{
	diff_says(
	    "b i32; a i32; c i32", "a i32; b i32; c i32",
	    "field 'b' is at position 1 in the stream but 2 in the request");
}

Test(schema, diff_message_may_be_null_or_short)
{
	struct schema h = parse_ok("a i32"), w = parse_ok("a i64");
	char buf[6];

	cr_assert_eq(schema_diff(&h, &w, NULL, 0), 1);
	cr_assert_eq(schema_diff(&h, &w, buf, sizeof(buf)), 1);
	cr_assert_str_eq(buf, "field");
}

Test(schema, garbage_bytes_never_crash)
{
	static char text[4096];
	struct schema s;
	char err[128];

	srand(12345);
	for (int iter = 0; iter < 2000; iter++) {
		size_t n = (size_t)(rand() % (int)(sizeof(text) - 1));

		for (size_t i = 0; i < n; i++)
			text[i] = (char)(rand() % 255 + 1);
		text[n] = '\0';
		int r = schema_parse(text, &s, err, sizeof(err));
		cr_assert(r == 0 || r == -EINVAL, "r=%d", r);
		cr_assert_lt(strlen(err), sizeof(err));
	}
}

/* A schema-like string: fields built from real names, dtypes and dims,
 * then a few bytes overwritten from the schema alphabet. */
static size_t random_schema_text(char *text, size_t len)
{
	static const char alphabet[] = "abfiuloq_0123456789 \t\r\n;:,[]-+x8";
	static const char *const names[] = {"obs", "a",	  "b", "mask",
					    "seq", "_x1", "9z"};
	static const char *const types[] = {"f32", "u8",  "bool", "i64",
					    "f16", "f33", ""};
	static const char *const dims[] = {"1",		 "9",	  "20", "0",
					   "4294967295", "65536", ""};
	int nfields = rand() % 6;
	size_t n = 0;

#define PICK(arr) arr[rand() % (int)(sizeof(arr) / sizeof(arr[0]))]
	for (int i = 0; i < nfields && n + 128 < len; i++) {
		n += (size_t)snprintf(text + n, len - n, "%s%s%s%s",
				      PICK(names), rand() % 3 ? " " : ":",
				      PICK(types), rand() % 2 ? "" : "[");
		if (text[n - 1] == '[') {
			int nd = rand() % 10;

			for (int d = 0; d < nd; d++)
				n += (size_t)snprintf(text + n, len - n, "%s%s",
						      d ? "," : "", PICK(dims));
			text[n++] = ']';
		}
		text[n++] = rand() % 2 ? ';' : '\n';
	}
	text[n] = '\0';
	for (int m = rand() % 4 - 1; m > 0 && n > 0; m--)
		text[rand() % (int)n] = PICK(alphabet);
#undef PICK
	return n;
}

Test(schema, strings_of_the_schema_alphabet_never_crash)
{
	char text[1024];
	struct schema s;
	char err[256];
	int ok = 0;

	srand(54321);
	for (int iter = 0; iter < 5000; iter++) {
		random_schema_text(text, sizeof(text));
		int r = schema_parse(text, &s, err, sizeof(err));
		cr_assert(r == 0 || r == -EINVAL, "r=%d for \"%s\"", r, text);
		if (r < 0) {
			cr_assert(strlen(err) > 0);
			continue;
		}
		char canon[SCHEMA_TEXT_MAX];
		struct schema t;

		ok++;
		cr_assert_gt(schema_format(&s, canon, sizeof(canon)), 0);
		cr_assert_eq(schema_parse(canon, &t, err, sizeof(err)), 0,
			     "canonical \"%s\" of \"%s\": %s", canon, text,
			     err);
		cr_assert_eq(t.hash, s.hash);
		cr_assert_eq(schema_diff(&s, &t, NULL, 0), 0);
	}
	/* Some must parse, or the round trip above tests nothing. */
	cr_assert_gt(ok, 100, "only %d of 5000 random schemas parsed", ok);
}

Test(schema, large_input_is_handled)
{
	size_t n = 400 * 1024;
	char *text = malloc(n + 1);
	struct schema s;
	char err[256];

	cr_assert_not_null(text);
	memset(text, ' ', n);
	memcpy(text + n - 6, "a i32;", 6);
	text[n] = '\0';
	cr_assert_eq(schema_parse(text, &s, err, sizeof(err)), 0, "%s", err);
	memset(text, ';', n);
	cr_assert_eq(schema_parse(text, &s, err, sizeof(err)), -EINVAL);
	memset(text, 'a', n);
	cr_assert_eq(schema_parse(text, &s, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "too long"), "%s", err);
	free(text);
}
