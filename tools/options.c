/* options.c — the table-driven option parser of the expbus subcommands:
 * builds getopt_long's tables from a command's option_spec array, checks
 * each value against its kind and bounds, and prints --help from the
 * same table, so an option's parsing and its documentation never part. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"

#define HELP_COLUMN 26 /* where the help text of an option starts */

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "expbus %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'expbus %s --help'.\n", cmd);
	return EXIT_USAGE;
}

static int parse_u64(const char *cmd, const char *opt, const char *arg,
		     uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	/* strtoull accepts "-1" and wraps it: refuse any sign up front. */
	if (arg[0] < '0' || arg[0] > '9')
		goto bad;
	v = strtoull(arg, &end, 10);
	if (errno || *end || v < min || v > max)
		goto bad;
	*out = v;
	return 0;
bad:
	cli_usage_error(
	    cmd, "--%s: '%s' is not a whole number from %llu to %llu", opt, arg,
	    (unsigned long long)min, (unsigned long long)max);
	return -EINVAL;
}

static int parse_seconds(const char *cmd, const char *opt, const char *arg,
			 double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || !(v >= 0) || v > 1e9) {
		cli_usage_error(
		    cmd, "--%s: '%s' is not a number of seconds (e.g. 2.5)",
		    opt, arg);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int parse_list(const char *cmd, const char *opt, const char *arg,
		      uint64_t max, struct id_list *out)
{
	uint32_t *v = malloc(sizeof(*v) * (max ? max : 1)), k = 0, n = 0;
	const char *p = arg;

	if (!v) {
		fprintf(stderr, "expbus %s: out of memory\n", cmd);
		return -ENOMEM;
	}
	for (;;) {
		unsigned long lo, hi;
		char *end;

		if (*p < '0' || *p > '9')
			goto bad;
		errno = 0;
		lo = hi = strtoul(p, &end, 10);
		if (*end == '-') {
			p = end + 1;
			if (*p < '0' || *p > '9')
				goto bad;
			hi = strtoul(p, &end, 10);
		}
		if (errno || lo > UINT32_MAX || hi > UINT32_MAX || lo > hi)
			goto bad;
		if (hi - lo >= max || k + (hi - lo) >= max) {
			free(v);
			cli_usage_error(cmd,
					"--%s: '%s' names more than %llu ids",
					opt, arg, (unsigned long long)max);
			return -EINVAL;
		}
		for (unsigned long x = lo; x <= hi; x++)
			v[k++] = (uint32_t)x;
		if (*end == '\0')
			break;
		if (*end != ',')
			goto bad;
		p = end + 1;
	}
	qsort(v, k, sizeof(*v), cmp_u32);
	for (uint32_t i = 0; i < k; i++)
		if (n == 0 || v[n - 1] != v[i])
			v[n++] = v[i];
	free(out->ids);
	out->ids = v;
	out->n = n;
	return 0;
bad:
	free(v);
	cli_usage_error(
	    cmd, "--%s: '%s' is not a list of ids such as '0,2,5-9'", opt, arg);
	return -EINVAL;
}

static int parse_choice(const char *cmd, const struct option_spec *o,
			const char *arg)
{
	char names[256] = "";

	for (int i = 0; o->choices[i]; i++)
		if (strcmp(arg, o->choices[i]) == 0) {
			*(int *)o->target = i;
			return 0;
		}
	for (int i = 0; o->choices[i]; i++) {
		size_t len = strlen(names);
		snprintf(names + len, sizeof(names) - len, "%s%s",
			 i ? ", " : "", o->choices[i]);
	}
	cli_usage_error(cmd, "--%s: '%s' is none of %s", o->name, arg, names);
	return -EINVAL;
}

static int take_value(const char *cmd, const struct option_spec *o,
		      const char *arg)
{
	uint64_t v;
	int err;

	switch (o->kind) {
	case OPTION_HEADING:
		return 0;
	case OPTION_FLAG:
		*(bool *)o->target = true;
		return 0;
	case OPTION_STRING:
		if (o->max && (!arg[0] || strlen(arg) > o->max)) {
			cli_usage_error(
			    cmd, "--%s: a %s of 1 to %llu characters", o->name,
			    o->metavar ? o->metavar : "value",
			    (unsigned long long)o->max);
			return -EINVAL;
		}
		*(const char **)o->target = arg;
		return 0;
	case OPTION_U32:
	case OPTION_U64:
		err = parse_u64(cmd, o->name, arg, o->min, o->max, &v);
		if (err)
			return err;
		if ((o->flags & OPTION_POW2) && (v & (v - 1))) {
			cli_usage_error(cmd, "--%s: %llu is not a power of two",
					o->name, (unsigned long long)v);
			return -EINVAL;
		}
		if (o->kind == OPTION_U32)
			*(uint32_t *)o->target = (uint32_t)v;
		else
			*(uint64_t *)o->target = v;
		return 0;
	case OPTION_SECONDS:
		err = parse_seconds(cmd, o->name, arg, (double *)o->target);
		if (err == 0 && *(double *)o->target < (double)o->min / 1000) {
			cli_usage_error(cmd, "--%s: at least %g s", o->name,
					(double)o->min / 1000);
			return -EINVAL;
		}
		return err;
	case OPTION_LIST:
		return parse_list(cmd, o->name, arg, o->max, o->target);
	case OPTION_CHOICE:
		return parse_choice(cmd, o, arg);
	}
	return -EINVAL;
}

static size_t count_options(const struct option_spec *opts)
{
	size_t n = 0;

	while (opts[n].name || opts[n].help)
		n++;
	return n;
}

int options_parse(const struct command_spec *spec, int argc, char **argv,
		  int *first_arg)
{
	const struct option_spec *opts = spec->options;
	const size_t n = count_options(opts);
	/* getopt's own tables: one entry per option, plus --help and the
	 * end; "s:n:h" style short options. A long option's val is its
	 * index + 256, so it never collides with a short letter. */
	struct option *lo = calloc(n + 2, sizeof(*lo));
	char *shorts = calloc(2 * n + 4, 1), *sp;
	int c, err = 0;

	if (!lo || !shorts) {
		free(lo);
		free(shorts);
		fprintf(stderr, "expbus %s: out of memory\n", spec->name);
		return -ENOMEM;
	}
	sp = shorts;
	*sp++ = ':'; /* report a missing value as ':' */
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (opts[i].kind == OPTION_HEADING)
			continue;
		lo[k].name = opts[i].name;
		lo[k].has_arg = opts[i].kind == OPTION_FLAG ? no_argument
							    : required_argument;
		lo[k].val = (int)i + 256;
		k++;
		if (opts[i].short_name) {
			*sp++ = opts[i].short_name;
			if (opts[i].kind != OPTION_FLAG)
				*sp++ = ':';
		}
	}
	lo[k].name = "help";
	lo[k].has_arg = no_argument;
	lo[k].val = 'h';
	*sp++ = 'h';

	optind = 0; /* glibc: start afresh for each command */
	opterr = 0; /* our own messages */
	while ((c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		const struct option_spec *o = NULL;

		if (c == 'h') {
			options_help(spec);
			err = 1;
			break;
		}
		if (c == '?' || c == ':') {
			const char *what = argv[optind - 1];
			err = -EINVAL;
			if (c == ':')
				cli_usage_error(spec->name, "%s needs a value",
						what);
			else
				cli_usage_error(spec->name,
						"unknown option '%s'", what);
			break;
		}
		if (c >= 256) {
			o = &opts[c - 256];
		} else {
			for (size_t i = 0; i < n && !o; i++)
				if (opts[i].kind != OPTION_HEADING &&
				    opts[i].short_name == c)
					o = &opts[i];
		}
		if (!o) {
			err = -EINVAL;
			break;
		}
		err = take_value(spec->name, o, optarg);
		if (err)
			break;
		if (o->seen)
			*o->seen = true;
	}
	if (err == 0 && argc - optind > spec->max_args) {
		cli_usage_error(spec->name, "unexpected argument '%s'",
				argv[optind + spec->max_args]);
		err = -EINVAL;
	}
	if (first_arg)
		*first_arg = optind;
	free(lo);
	free(shorts);
	return err == -ENOMEM ? -EINVAL : err;
}

static void print_wrapped_help(const char *help, size_t used)
{
	const char *line = help;

	for (;;) {
		const char *nl = strchr(line, '\n');
		int len = nl ? (int)(nl - line) : (int)strlen(line);

		if (used + 1 >= HELP_COLUMN) {
			putchar('\n');
			used = 0;
		}
		printf("%*s%.*s\n", (int)(HELP_COLUMN - used), "", len, line);
		used = 0;
		if (!nl)
			break;
		line = nl + 1;
	}
}

void options_help(const struct command_spec *spec)
{
	const struct option_spec *opts = spec->options;
	const size_t n = count_options(opts);

	printf("Usage: expbus %s [OPTION]...%s%s\n", spec->name,
	       spec->args ? " " : "", spec->args ? spec->args : "");
	if (spec->summary)
		printf("%s\n", spec->summary);
	printf("\n");
	for (size_t i = 0; i < n; i++) {
		const struct option_spec *o = &opts[i];
		char head[64];
		int used;

		if (o->kind == OPTION_HEADING) {
			printf("%s\n", o->help);
			continue;
		}
		if (o->short_name)
			used = snprintf(head, sizeof(head), "  -%c, --%s",
					o->short_name, o->name);
		else
			used =
			    snprintf(head, sizeof(head), "      --%s", o->name);
		if (o->kind != OPTION_FLAG)
			used +=
			    snprintf(head + used, sizeof(head) - (size_t)used,
				     " %s", o->metavar ? o->metavar : "VALUE");
		fputs(head, stdout);
		print_wrapped_help(o->help ? o->help : "", (size_t)used);
	}
	printf("  -h, --help%*s%s\n", HELP_COLUMN - 12, "", "show this help");
	if (spec->epilog)
		printf("\n%s", spec->epilog);
}

void options_free(const struct command_spec *spec)
{
	const size_t n = count_options(spec->options);

	for (size_t i = 0; i < n; i++)
		if (spec->options[i].kind == OPTION_LIST) {
			struct id_list *l = spec->options[i].target;
			free(l->ids);
			l->ids = NULL;
			l->n = 0;
		}
}
