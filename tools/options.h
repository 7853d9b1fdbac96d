/* options.h — the one option parser of every expbus subcommand: a table
 * of options says each one's name, value kind, bounds, target and help,
 * and the same table drives getopt_long, the checking of values and the
 * --help text. */
#ifndef EXPBUS_TOOLS_OPTIONS_H
#define EXPBUS_TOOLS_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

enum option_kind {
	OPTION_HEADING, /* no option: help is a heading line in --help */
	OPTION_FLAG,	/* bool *target set to true */
	OPTION_STRING,	/* const char **target; max: longest length, 0 any */
	OPTION_U32,	/* uint32_t *target in [min, max] */
	OPTION_U64,	/* uint64_t *target in [min, max] */
	OPTION_SECONDS, /* double *target, >= min milliseconds, fractions ok */
	OPTION_LIST,	/* struct id_list *target: "1,3,10-20", max ids */
	OPTION_CHOICE,	/* int *target: index of the value in choices */
};

/* Flags of an option. */
#define OPTION_POW2 1u /* U32/U64: the value must be a power of two */

/* Sorted, duplicate-free ids given as "1,3,10-20"; ids is malloc'ed. */
struct id_list {
	uint32_t *ids;
	uint32_t n;
};

struct option_spec {
	const char *name; /* long name without "--" */
	char short_name;  /* 0: none */
	enum option_kind kind;
	void *target;
	uint64_t min, max;
	const char *metavar; /* the value's name in --help, e.g. "N" */
	const char *help;    /* '\n' starts a continuation line */
	unsigned flags;
	const char *const *choices; /* OPTION_CHOICE: NULL-terminated */
	bool *seen;		    /* optional: set when given */
};

/* The --socket option every command takes (its target a const char *). */
#define OPTION_SOCKET(where)                                                   \
	{                                                                      \
		.name = "socket", .short_name = 's', .kind = OPTION_STRING,    \
		.target = (where), .metavar = "PATH",                          \
		.help = "the broker's socket (default: expbus's)"              \
	}
#define OPTION_END                                                             \
	{                                                                      \
		0                                                              \
	}

struct command_spec {
	const char *name;    /* "sub" */
	const char *args;    /* after [OPTION]... in the usage line, or NULL */
	const char *summary; /* paragraph after the usage line */
	const struct option_spec *options; /* ends with OPTION_END */
	const char *epilog;		   /* after the options, or NULL */
	int max_args; /* positional arguments allowed (0: none) */
};

/* Parses argv (argv[0] the command's name) into the targets of spec's
 * options. Returns 0 with *first_arg the index of the first positional
 * argument; 1 when --help was printed (exit 0); -EINVAL after printing
 * why and a pointer to --help on stderr (exit EXIT_USAGE). */
int options_parse(const struct command_spec *spec, int argc, char **argv,
		  int *first_arg);

/* Prints spec's --help text to stdout. */
void options_help(const struct command_spec *spec);

/* Frees the ids of every OPTION_LIST of spec. */
void options_free(const struct command_spec *spec);

#endif
