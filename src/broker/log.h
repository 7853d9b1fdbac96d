/* log.h — the broker's log: levelled lines on stderr. */
#ifndef EXPBUSD_LOG_H
#define EXPBUSD_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

struct log {
	int level;
};

/* Parses "error", "warn", "info" or "debug". Returns the level or -1. */
int log_parse_level(const char *s);

void log_msg(const struct log *l, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(b, ...) log_msg(&(b)->log, LOG_ERROR, __VA_ARGS__)
#define log_warn(b, ...)  log_msg(&(b)->log, LOG_WARN, __VA_ARGS__)
#define log_info(b, ...)  log_msg(&(b)->log, LOG_INFO, __VA_ARGS__)
#define log_debug(b, ...)                                                      \
	do {                                                                   \
		if ((b)->log.level >= LOG_DEBUG)                               \
			log_msg(&(b)->log, LOG_DEBUG, __VA_ARGS__);            \
	} while (0)

#endif
