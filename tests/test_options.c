/* test_options.c — the table-driven option parser of the expbus tool
 * (tools/options.c): values, bounds, lists, choices, errors, --help. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdlib.h>

#include "options.h"

struct vals {
	const char *socket, *name;
	bool flag, seen_n;
	uint32_t n;
	uint64_t big;
	double secs;
	struct id_list ids;
	int choice;
};

static const char *const colours[] = {"red", "green", "blue", NULL};

#define SPEC(v)                                                                \
	const struct option_spec opts[] = {                                    \
	    OPTION_SOCKET(&(v).socket),                                        \
	    {.kind = OPTION_HEADING, .help = "Heading:"},                      \
	    {.name = "name",                                                   \
	     .kind = OPTION_STRING,                                            \
	     .target = &(v).name,                                              \
	     .max = 8,                                                         \
	     .metavar = "NAME",                                                \
	     .help = "a name\nsecond line"},                                   \
	    {.name = "flag",                                                   \
	     .kind = OPTION_FLAG,                                              \
	     .target = &(v).flag,                                              \
	     .help = "a flag"},                                                \
	    {.name = "n",                                                      \
	     .short_name = 'n',                                                \
	     .kind = OPTION_U32,                                               \
	     .target = &(v).n,                                                 \
	     .min = 1,                                                         \
	     .max = 1024,                                                      \
	     .flags = OPTION_POW2,                                             \
	     .seen = &(v).seen_n,                                              \
	     .metavar = "N",                                                   \
	     .help = "a power of two"},                                        \
	    {.name = "big",                                                    \
	     .kind = OPTION_U64,                                               \
	     .target = &(v).big,                                               \
	     .max = UINT64_MAX,                                                \
	     .metavar = "B",                                                   \
	     .help = "any"},                                                   \
	    {.name = "secs",                                                   \
	     .kind = OPTION_SECONDS,                                           \
	     .target = &(v).secs,                                              \
	     .min = 50,                                                        \
	     .metavar = "S",                                                   \
	     .help = "seconds"},                                               \
	    {.name = "ids",                                                    \
	     .kind = OPTION_LIST,                                              \
	     .target = &(v).ids,                                               \
	     .max = 16,                                                        \
	     .metavar = "L",                                                   \
	     .help = "ids"},                                                   \
	    {.name = "colour",                                                 \
	     .kind = OPTION_CHOICE,                                            \
	     .target = &(v).choice,                                            \
	     .choices = colours,                                               \
	     .metavar = "C",                                                   \
	     .help = "a colour"},                                              \
	    OPTION_END,                                                        \
	};                                                                     \
	const struct command_spec spec = {.name = "t",                         \
					  .summary = "Summary.",               \
					  .options = opts,                     \
					  .epilog = "Exit status: 0\n",        \
					  .max_args = 1}

static int run(const struct command_spec *spec, int *first, ...)
{
	char *argv[32] = {"t"}; /* argv[argc] stays NULL, as getopt wants */
	int argc = 1;
	va_list ap;

	va_start(ap, first);
	for (char *a; (a = va_arg(ap, char *));) {
		cr_assert_lt(argc, 31, "too many arguments for the test");
		argv[argc++] = a;
	}
	va_end(ap);
	return options_parse(spec, argc, argv, first);
}

Test(options, every_kind_of_value_reaches_its_target)
{
	struct vals v = {0};
	SPEC(v);
	int first;

	cr_assert_eq(run(&spec, &first, "-s", "/x.sock", "--name", "abc",
			 "--flag", "-n", "64", "--big", "18446744073709551615",
			 "--secs", "0.25", "--ids", "9,1-3,2", "--colour",
			 "blue", "rest", NULL),
		     0);
	cr_assert_str_eq(v.socket, "/x.sock");
	cr_assert_str_eq(v.name, "abc");
	cr_assert(v.flag && v.seen_n);
	cr_assert_eq(v.n, 64);
	cr_assert_eq(v.big, UINT64_MAX);
	cr_assert_float_eq(v.secs, 0.25, 1e-12);
	cr_assert_eq(v.ids.n, 4); /* sorted, duplicates gone */
	cr_assert(v.ids.ids[0] == 1 && v.ids.ids[2] == 3 && v.ids.ids[3] == 9);
	cr_assert_eq(v.choice, 2);
	cr_assert_eq(first, 16); /* "rest" */
	options_free(&spec);
	cr_assert_null(v.ids.ids);
}

Test(options, bad_values_are_refused_with_a_reason, .init = cr_redirect_stderr)
{
	struct vals v = {0};
	SPEC(v);

	cr_assert_eq(run(&spec, NULL, "-n", "48", NULL), -EINVAL);
	cr_assert_eq(run(&spec, NULL, "-n", "2048", NULL), -EINVAL);
	cr_assert_eq(run(&spec, NULL, "-n", "-1", NULL), -EINVAL);
	cr_assert_eq(run(&spec, NULL, "--big", "1x", NULL), -EINVAL);
	cr_assert_eq(run(&spec, NULL, "--secs", "0.01", NULL), -EINVAL);
	cr_assert_eq(run(&spec, NULL, "--name", "waytoolongname", NULL),
		     -EINVAL);
	cr_assert_eq(run(&spec, NULL, "--ids", "0-100", NULL), -EINVAL);
	cr_assert_eq(run(&spec, NULL, "--colour", "pink", NULL), -EINVAL);
	cr_assert_eq(run(&spec, NULL, "--nope", NULL), -EINVAL);
	cr_assert_eq(run(&spec, NULL, "--name", NULL), -EINVAL);
	cr_assert_eq(run(&spec, NULL, "a", "b", NULL), -EINVAL);
	fflush(stderr);
	cr_assert_stderr_eq_str(
	    "expbus t: --n: 48 is not a power of two\n"
	    "Try 'expbus t --help'.\n"
	    "expbus t: --n: '2048' is not a whole number from 1 to 1024\n"
	    "Try 'expbus t --help'.\n"
	    "expbus t: --n: '-1' is not a whole number from 1 to 1024\n"
	    "Try 'expbus t --help'.\n"
	    "expbus t: --big: '1x' is not a whole number from 0 to "
	    "18446744073709551615\n"
	    "Try 'expbus t --help'.\n"
	    "expbus t: --secs: at least 0.05 s\n"
	    "Try 'expbus t --help'.\n"
	    "expbus t: --name: a NAME of 1 to 8 characters\n"
	    "Try 'expbus t --help'.\n"
	    "expbus t: --ids: '0-100' names more than 16 ids\n"
	    "Try 'expbus t --help'.\n"
	    "expbus t: --colour: 'pink' is none of red, green, blue\n"
	    "Try 'expbus t --help'.\n"
	    "expbus t: unknown option '--nope'\n"
	    "Try 'expbus t --help'.\n"
	    "expbus t: --name needs a value\n"
	    "Try 'expbus t --help'.\n"
	    "expbus t: unexpected argument 'b'\n"
	    "Try 'expbus t --help'.\n");
}

Test(options, help_is_printed_from_the_same_table, .init = cr_redirect_stdout)
{
	struct vals v = {0};
	SPEC(v);

	cr_assert_eq(run(&spec, NULL, "--help", NULL), 1);
	fflush(stdout);
	cr_assert_stdout_eq_str(
	    "Usage: expbus t [OPTION]...\n"
	    "Summary.\n"
	    "\n"
	    "  -s, --socket PATH       the broker's socket (default: expbus's)\n"
	    "Heading:\n"
	    "      --name NAME         a name\n"
	    "                          second line\n"
	    "      --flag              a flag\n"
	    "  -n, --n N               a power of two\n"
	    "      --big B             any\n"
	    "      --secs S            seconds\n"
	    "      --ids L             ids\n"
	    "      --colour C          a colour\n"
	    "  -h, --help              show this help\n"
	    "\n"
	    "Exit status: 0\n");
}
