/* cmd_top.c — `expbus top`: a live view of the broker, refreshed every
 * interval: per producer ring its occupancy and input rate, per
 * subscription its output rates, lag, batches and drops, and totals.
 * Full screen with keys on a terminal (ANSI escapes, termios; no curses),
 * one plain-text frame per interval otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "expbus.h"
#include "stats_view.h"

#define CMD	      "top"
#define BAR_WIDTH     20
#define GONE_CHECK_NS 1000000000ull

enum sort_key { SORT_ID, SORT_RATE, SORT_FILL, SORT_DROPS, SORT_KEYS };

static const char *const sort_names[SORT_KEYS] = {
    "id",
    "rate (IN/s, REC/s)",
    "fill/lag (FILL, LAG)",
    "drops (STALLS, DROP/s)",
};

struct frame {
	char *buf;
	size_t len, cap;
	int lines;
	int max_lines; /* 0: no limit (plain text) */
	int cols;      /* 0: no limit */
	bool oom;
};

struct top {
	struct stats_source src;
	struct stats_view view[2];
	int cur; /* view[cur] is the newest; view[!cur] the one before */
	bool have_view;
	double delay;
	uint64_t frames; /* 0: until q or a signal */
	bool screen;	 /* stdout is a terminal: full screen */
	bool keys;	 /* and stdin too: raw mode, keys */
	bool raw;
	struct termios saved;
	enum sort_key sort;
	bool paused, help;
	bool gone; /* the broker exited; waiting for another at the socket */
	int rows, cols;
	uint32_t *order; /* indices into the view, sorted for display */
};

static volatile sig_atomic_t got_stop, got_winch, got_tstp;

static void on_signal(int sig)
{
	if (sig == SIGWINCH)
		got_winch = 1;
	else if (sig == SIGTSTP)
		got_tstp = 1;
	else
		got_stop = 1;
}

static void usage(void)
{
	printf(
	    "Usage: expbus top [OPTION]...\n"
	    "A live view of the broker, refreshed every interval: per producer\n"
	    "ring an occupancy bar, fill %% and records/s in; per subscription\n"
	    "records/s and GB/s out, lag in records and milliseconds, batches/s\n"
	    "by flush reason (full/timeout/drain) with their average fill, and\n"
	    "drops by reason; totals and unclaimed records. Everything is read\n"
	    "from the broker's stats segment, mapped read-only: top never\n"
	    "disturbs the broker, however busy it is.\n"
	    "\n"
	    "  -s, --socket PATH  the broker's socket (default: expbus's)\n"
	    "  -d, --delay SEC    seconds between refreshes (default 1; >= 0.05)\n"
	    "  -n, --frames N     stop after N frames (default: until q)\n"
	    "  -o, --sort KEY     first sort key: id, rate, fill, drops\n"
	    "                     (default rate)\n"
	    "  -h, --help         show this help\n"
	    "\n"
	    "Keys (when stdin and stdout are a terminal):\n"
	    "  q       quit                 s / S  next / previous sort key\n"
	    "  p       pause / resume       ?      help\n"
	    "  space   refresh now          ^L     redraw\n"
	    "When stdout is not a terminal, top prints one plain-text frame per\n"
	    "interval (the first after one interval, so that it has rates).\n"
	    "\n"
	    "OCC/CAP: records committed to a ring and not yet taken by the\n"
	    "broker (tail - head; the tail as the broker last read it, at most\n"
	    "100 ms old), over the ring's slots. LAG: records routed to a\n"
	    "subscription and not yet released, in batches it holds plus the\n"
	    "batch being filled; LAG_MS: the age of the oldest of them. FILL: the\n"
	    "average fill of the batches published in the interval. Each refresh\n"
	    "reads one consistent snapshot; rates are the counters' growth over\n"
	    "the interval.\n"
	    "\n"
	    "Exit status: 0 quit (q, -n, SIGINT or SIGTERM), 1 out of memory or\n"
	    "the terminal failed, 2 bad usage, 3 no broker at the socket.\n");
}

/* ---- output ---------------------------------------------------------- */

static void frame_add(struct frame *f, const char *s, size_t n)
{
	if (f->oom)
		return;
	if (f->len + n + 1 > f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8192;
		char *b;

		while (cap < f->len + n + 1)
			cap *= 2;
		b = realloc(f->buf, cap);
		if (!b) {
			f->oom = true;
			return;
		}
		f->buf = b;
		f->cap = cap;
	}
	memcpy(f->buf + f->len, s, n);
	f->len += n;
	f->buf[f->len] = '\0';
}

/* One line, cut to the terminal's width; lines past its height are left
 * out (the last one says how many). */
static void __attribute__((format(printf, 2, 3)))
line(struct frame *f, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	if (f->max_lines && f->lines >= f->max_lines) {
		f->lines++;
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (f->cols && n > f->cols)
		n = f->cols;
	/* On a terminal: clear the rest of each line instead of the whole
	 * screen first, so that nothing flickers. */
	if (f->max_lines && f->lines)
		frame_add(f, "\033[K\n", 4);
	else if (!f->max_lines && f->lines)
		frame_add(f, "\n", 1);
	frame_add(f, buf, (size_t)n);
	f->lines++;
}

static int write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* 1234567 -> "1.23M"; below 1000 as is, with decimals only if asked. */
static const char *si(char *buf, size_t len, double x, int decimals)
{
	static const char units[] = " kMGTP";
	int u = 0;

	while (x >= 999.5 && u < 5) {
		x /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.*f", decimals, x);
	else
		snprintf(buf, len, "%.*f%c",
			 x < 9.995   ? 2
			 : x < 99.95 ? 1
				     : 0,
			 x, units[u]);
	return buf;
}

static void bar(char *buf, double fill)
{
	int n = (int)(fill * BAR_WIDTH + 0.5);

	if (n > BAR_WIDTH)
		n = BAR_WIDTH;
	/* Not empty unless really empty: one record shows. */
	if (n == 0 && fill > 0)
		n = 1;
	buf[0] = '[';
	for (int i = 0; i < BAR_WIDTH; i++)
		buf[1 + i] = i < n ? '#' : '.';
	buf[BAR_WIDTH + 1] = ']';
	buf[BAR_WIDTH + 2] = '\0';
}

/* ---- sorting --------------------------------------------------------- */

static const struct stats_view *sort_view;
static enum sort_key sort_by;

static int cmp_double_desc(double a, double b)
{
	return a > b ? -1 : a < b;
}

static int cmp_producers(const void *a, const void *b)
{
	const struct sv_producer *x =
	    &sort_view->producers[*(const uint32_t *)a];
	const struct sv_producer *y =
	    &sort_view->producers[*(const uint32_t *)b];
	int c = 0;

	switch (sort_by) {
	case SORT_RATE:
		c = cmp_double_desc(x->in_per_s, y->in_per_s);
		break;
	case SORT_FILL:
		c = cmp_double_desc(x->fill, y->fill);
		break;
	case SORT_DROPS:
		c = cmp_double_desc((double)x->stalls, (double)y->stalls);
		break;
	default:
		break;
	}
	return c ? c : (x->id > y->id) - (x->id < y->id);
}

static uint64_t drops(const struct sv_sub *s)
{
	uint64_t n = 0;

	for (int r = 0; r < DROP_REASONS; r++)
		n += s->dropped[r];
	return n;
}

static int cmp_subs(const void *a, const void *b)
{
	const struct sv_sub *x = &sort_view->subs[*(const uint32_t *)a];
	const struct sv_sub *y = &sort_view->subs[*(const uint32_t *)b];
	int c = 0;

	switch (sort_by) {
	case SORT_RATE:
		c = cmp_double_desc(x->out_per_s, y->out_per_s);
		break;
	case SORT_FILL:
		c = cmp_double_desc((double)x->lag_records,
				    (double)y->lag_records);
		break;
	case SORT_DROPS:
		c = cmp_double_desc(x->drops_per_s, y->drops_per_s);
		if (!c)
			c = cmp_double_desc((double)drops(x), (double)drops(y));
		break;
	default:
		break;
	}
	return c ? c : (x->id > y->id) - (x->id < y->id);
}

/* ---- drawing --------------------------------------------------------- */

static void draw_title(struct top *t, struct frame *f,
		       const struct stats_view *v)
{
	char when[16], up[32];
	time_t now = time(NULL);
	struct tm tm;
	double secs = v->taken_ns > v->start_ns
			  ? (double)(v->taken_ns - v->start_ns) / 1e9
			  : 0;

	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	if (secs >= 3600)
		snprintf(up, sizeof(up), "%uh%02um", (unsigned)(secs / 3600),
			 (unsigned)(secs / 60) % 60);
	else
		snprintf(up, sizeof(up), "%um%02us", (unsigned)(secs / 60),
			 (unsigned)secs % 60);
	line(f,
	     "expbus top - %s - broker pid %u at %s, up %s; every %.2gs, "
	     "sort: %s%s",
	     when, v->broker_pid, t->src.socket, up, t->delay,
	     sort_names[t->sort], t->paused ? "  [PAUSED]" : "");
	if (t->gone)
		line(f,
		     "the broker (pid %u) is gone; these are its last numbers. "
		     "Waiting for a broker at %s",
		     v->broker_pid, t->src.socket);
}

static void draw_totals(struct frame *f, const struct stats_view *v)
{
	double in = 0, out = 0, bytes = 0, drop = 0;
	uint64_t lag = 0, dropped = 0, occ = 0, cap = 0;
	char a[16], b[16], c[16], d[16], e[16], g[16], h[16];

	for (uint32_t i = 0; i < v->n_producers; i++) {
		in += v->producers[i].in_per_s;
		occ += v->producers[i].occupancy;
		cap += v->producers[i].capacity;
	}
	for (uint32_t i = 0; i < v->n_subs; i++) {
		out += v->subs[i].out_per_s;
		bytes += v->subs[i].bytes_per_s;
		drop += v->subs[i].drops_per_s;
		lag += v->subs[i].lag_records;
		dropped += drops(&v->subs[i]);
	}
	line(f,
	     "%u streams, %u producers, %u subscriptions; protocol "
	     "violations %" PRIu64,
	     v->n_streams, v->n_producers, v->n_subs, v->violations);
	line(f,
	     "TOTAL in %s rec/s (rings hold %s of %s)  out %s rec/s %.3f GB/s"
	     "  lag %s rec  drops %s/s (%" PRIu64 " in all)",
	     si(a, sizeof(a), in, 0), si(b, sizeof(b), (double)occ, 0),
	     si(c, sizeof(c), (double)cap, 0), si(d, sizeof(d), out, 0),
	     bytes / 1e9, si(e, sizeof(e), (double)lag, 0),
	     si(g, sizeof(g), drop, 0), dropped);
	line(f, "UNCLAIMED %" PRIu64 " records, %s/s", v->unclaimed,
	     si(h, sizeof(h), v->unclaimed_per_s, 0));
}

static void draw_producers(struct top *t, struct frame *f,
			   const struct stats_view *v)
{
	line(f, "%s", "");
	line(f, "%5s %-14s %8s %-22s %6s %17s %8s %8s %-8s", "PROD", "STREAM",
	     "PID", "RING", "FILL", "OCC/CAP", "IN/s", "STALLS", "STATE");
	for (uint32_t i = 0; i < v->n_producers; i++)
		t->order[i] = i;
	sort_view = v;
	sort_by = t->sort;
	qsort(t->order, v->n_producers, sizeof(*t->order), cmp_producers);
	for (uint32_t i = 0; i < v->n_producers; i++) {
		const struct sv_producer *p = &v->producers[t->order[i]];
		char b[BAR_WIDTH + 3], oc[24], r[16], st[16];

		bar(b, p->fill);
		snprintf(oc, sizeof(oc), "%" PRIu64 "/%u", p->occupancy,
			 p->capacity);
		line(f, "%5u %-14.14s %8u %-22s %5.1f%% %17s %8s %8s %-8s",
		     p->id, stats_view_stream_name(v, p->stream_id), p->pid, b,
		     100 * p->fill, oc,
		     v->interval_s > 0 ? si(r, sizeof(r), p->in_per_s, 0) : "-",
		     si(st, sizeof(st), (double)p->stalls, 0),
		     sv_state_name(p->state));
	}
}

static void draw_subs(struct top *t, struct frame *f,
		      const struct stats_view *v)
{
	line(f, "%s", "");
	line(f, "%5s %-14s %8s %-8s %-10s %8s %7s %8s %8s %-17s %5s %8s %-13s",
	     "SUB", "STREAM", "PID", "POLICY", "GROUP", "REC/s", "GB/s", "LAG",
	     "LAG_MS", "BATCH/s F/T/D", "FILL", "DROP/s", "DROPS FULL/GONE");
	for (uint32_t i = 0; i < v->n_subs; i++)
		t->order[i] = i;
	sort_view = v;
	sort_by = t->sort;
	qsort(t->order, v->n_subs, sizeof(*t->order), cmp_subs);
	for (uint32_t i = 0; i < v->n_subs; i++) {
		const struct sv_sub *s = &v->subs[t->order[i]];
		bool rates = v->interval_s > 0;
		char r[16], lag[16], bt[40], b1[16], b2[16], b3[16], fill[16],
		    dr[16], d1[16], d2[16], drops_txt[40];

		snprintf(
		    bt, sizeof(bt), "%s/%s/%s",
		    si(b1, sizeof(b1), s->batches_per_s[EXPBUS_FLUSH_FULL], 0),
		    si(b2, sizeof(b2), s->batches_per_s[EXPBUS_FLUSH_TIMEOUT],
		       0),
		    si(b3, sizeof(b3), s->batches_per_s[EXPBUS_FLUSH_DRAIN],
		       0));
		if (s->avg_fill > 0)
			snprintf(fill, sizeof(fill), "%.0f%%",
				 100 * s->avg_fill);
		else
			snprintf(fill, sizeof(fill), "-");
		snprintf(
		    drops_txt, sizeof(drops_txt), "%s/%s",
		    si(d1, sizeof(d1), (double)s->dropped[DROP_RING_FULL], 0),
		    si(d2, sizeof(d2), (double)s->dropped[DROP_SUBSCRIBER_GONE],
		       0));
		line(f,
		     "%5u %-14.14s %8u %-8s %-10.10s %8s %7.3f %8s %8.1f %-17s "
		     "%5s %8s %-13s",
		     s->id, stats_view_stream_name(v, s->stream_id), s->pid,
		     sv_policy_name(s->policy), s->group[0] ? s->group : "-",
		     rates ? si(r, sizeof(r), s->out_per_s, 0) : "-",
		     s->bytes_per_s / 1e9,
		     si(lag, sizeof(lag), (double)s->lag_records, 0),
		     (double)s->lag_ns / 1e6, rates ? bt : "-", fill,
		     rates ? si(dr, sizeof(dr), s->drops_per_s, 0) : "-",
		     drops_txt);
	}
}

static void draw_help(struct frame *f)
{
	static const char *const text[] = {
	    "",
	    "Keys",
	    "  q        quit",
	    "  s / S    next / previous sort key: id, rate, fill/lag, drops",
	    "           (producers and subscriptions sort on their own column)",
	    "  p        pause / resume refreshing",
	    "  space    refresh now",
	    "  ^L       redraw",
	    "  ?        this help; any key goes back",
	    "",
	    "Columns",
	    "  FILL, OCC/CAP  records committed to a ring, not yet taken",
	    "  IN/s           records taken from a ring per second",
	    "  REC/s, GB/s    records and column bytes delivered per second",
	    "  LAG, LAG_MS    records routed to a subscription, not yet",
	    "                 released; age of the oldest of them",
	    "  BATCH/s F/T/D  batches per second flushed full/timed out/drained",
	    "  FILL (sub)     average fill of those batches",
	    "  DROP/s, DROPS  drops per second; in all, by reason",
	    "  UNCLAIMED      records no subscription wanted",
	};

	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		line(f, "%s", text[i]);
}

static int draw(struct top *t)
{
	const struct stats_view *v = &t->view[t->cur];
	struct frame f = {
	    .max_lines = t->screen ? t->rows : 0,
	    .cols = t->screen ? t->cols : 0,
	};
	int err;

	if (t->screen)
		frame_add(&f, "\033[H", 3);
	draw_title(t, &f, v);
	draw_totals(&f, v);
	if (t->help) {
		draw_help(&f);
	} else {
		draw_producers(t, &f, v);
		draw_subs(t, &f, v);
	}
	if (t->screen) {
		if (f.lines > f.max_lines && f.max_lines > 1) {
			/* Say what the screen could not hold, on its last row.
			 */
			int more = f.lines - f.max_lines + 1;
			char *last = f.buf;

			for (char *p = f.buf; (p = strstr(p, "\033[K\n"));
			     p += 4)
				last = p;
			f.len = (size_t)(last - f.buf);
			f.lines = f.max_lines - 1;
			f.max_lines = 0;
			frame_add(&f, "\033[K\n", 4);
			{
				char msg[64];
				int n = snprintf(msg, sizeof(msg),
						 "... %d more lines (a taller "
						 "terminal shows them)",
						 more);
				if (t->cols && n > t->cols)
					n = t->cols;
				frame_add(&f, msg, (size_t)n);
			}
		}
		frame_add(&f, "\033[K\033[J", 6);
	} else {
		frame_add(&f, "\n\n", 2);
	}
	if (f.oom) {
		free(f.buf);
		return -ENOMEM;
	}
	err = write_all(STDOUT_FILENO, f.buf, f.len);
	free(f.buf);
	return err;
}

/* ---- the terminal ---------------------------------------------------- */

static void term_size(struct top *t)
{
	struct winsize ws;

	t->rows = 24;
	t->cols = 80;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row &&
	    ws.ws_col) {
		t->rows = ws.ws_row;
		t->cols = ws.ws_col;
	}
}

/* Raw enough for single keys: no line buffering, no echo. Signals stay
 * on, so that ^C and ^Z work as everywhere (and are handled). */
static int term_enter(struct top *t)
{
	static const char enter[] = "\033[?1049h\033[?25l\033[H\033[2J";

	if (t->keys) {
		struct termios raw;

		if (tcgetattr(STDIN_FILENO, &t->saved) < 0)
			return -errno;
		raw = t->saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) < 0)
			return -errno;
		t->raw = true;
	}
	/* The alternate screen gives back what was on the terminal. */
	return write_all(STDOUT_FILENO, enter, sizeof(enter) - 1);
}

static void term_leave(struct top *t)
{
	static const char leave[] = "\033[?25h\033[?1049l";

	(void)write_all(STDOUT_FILENO, leave, sizeof(leave) - 1);
	if (t->raw) {
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved);
		t->raw = false;
	}
}

/* ^Z: give the terminal back, stop, and take it again on SIGCONT. */
static void suspend(struct top *t)
{
	sigset_t tstp;

	term_leave(t);
	sigemptyset(&tstp);
	sigaddset(&tstp, SIGTSTP);
	signal(SIGTSTP, SIG_DFL);
	sigprocmask(SIG_UNBLOCK, &tstp, NULL);
	raise(SIGTSTP);
	/* Stopped here until continued. */
	sigprocmask(SIG_BLOCK, &tstp, NULL);
	signal(SIGTSTP, on_signal);
	(void)term_enter(t);
	term_size(t);
}

/* ---- the loop -------------------------------------------------------- */

/* Takes a new view and its rates against the one before. */
static int refresh(struct top *t)
{
	struct stats_view *prev = &t->view[t->cur], *next = &t->view[!t->cur];
	int err;

	/* A broker that exited keeps its segment alive while we map it, but
	 * it stops counting: look for a new one at the socket instead. */
	if (t->have_view && kill((pid_t)prev->broker_pid, 0) < 0 &&
	    errno == ESRCH) {
		if (stats_source_reopen(&t->src) < 0) {
			t->gone = true;
			return 0;
		}
		t->gone = false;
	}
	err = stats_view_take(t->src.seg, next);
	if (err < 0)
		return err;
	if (t->have_view)
		stats_view_rates(prev, next);
	t->cur = !t->cur;
	t->have_view = true;
	return 0;
}

static void handle_keys(struct top *t, bool *redraw, bool *now, bool *quit)
{
	char keys[64];
	ssize_t n = read(STDIN_FILENO, keys, sizeof(keys));

	for (ssize_t i = 0; i < n; i++) {
		char k = keys[i];

		if (t->help && k != 'q') {
			t->help = false;
			*redraw = true;
			continue;
		}
		switch (k) {
		case 'q':
		case 'Q':
			*quit = true;
			return;
		case 's':
			t->sort = (t->sort + 1) % SORT_KEYS;
			*redraw = true;
			break;
		case 'S':
			t->sort = (t->sort + SORT_KEYS - 1) % SORT_KEYS;
			*redraw = true;
			break;
		case 'p':
		case 'P':
			t->paused = !t->paused;
			*redraw = true;
			break;
		case '?':
		case 'h':
			t->help = true;
			*redraw = true;
			break;
		case ' ':
			*now = true;
			break;
		case '\f':
			*redraw = true;
			break;
		case '\033':
			/* An escape sequence (arrows, F-keys): ignore it. */
			while (i + 1 < n && keys[i + 1] != '\033' &&
			       !(keys[i + 1] >= '@' && keys[i + 1] <= '~' &&
				 keys[i + 1] != '['))
				i++;
			i++;
			break;
		default:
			break;
		}
	}
}

static int run(struct top *t)
{
	uint64_t shown = 0, next_ns;
	sigset_t old;
	bool redraw, quit = false;
	int err;

	err = refresh(t);
	if (err < 0)
		return err;
	next_ns = cli_now_ns() + (uint64_t)(t->delay * 1e9);
	/* On a terminal, something at once; rates come with the next frame.
	 * In plain text, every frame has its rates. */
	redraw = t->screen;
	sigprocmask(SIG_SETMASK, NULL, &old);
	sigdelset(&old, SIGINT);
	sigdelset(&old, SIGTERM);
	sigdelset(&old, SIGWINCH);
	sigdelset(&old, SIGTSTP);
	for (;;) {
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		struct timespec ts, *tsp = NULL;
		uint64_t now = cli_now_ns();
		bool take = false;
		int r;

		if (got_stop || quit)
			return 0;
		if (got_tstp) {
			got_tstp = 0;
			suspend(t);
			redraw = true;
		}
		if (got_winch) {
			got_winch = 0;
			term_size(t);
			redraw = true;
		}
		if (!t->paused && now >= next_ns)
			take = true;
		if (take) {
			err = refresh(t);
			if (err < 0)
				return err;
			next_ns = now + (uint64_t)(t->delay * 1e9);
			redraw = true;
		}
		if (redraw) {
			err = draw(t);
			if (err < 0)
				return err;
			redraw = false;
			if (take && t->frames && ++shown >= t->frames)
				return 0;
		}
		if (!t->paused) {
			uint64_t wait = next_ns > now ? next_ns - now : 0;
			ts.tv_sec = (time_t)(wait / 1000000000u);
			ts.tv_nsec = (long)(wait % 1000000000u);
			tsp = &ts;
		}
		/* The signals are blocked except inside ppoll: a signal that
		 * comes between the checks above and the wait still ends it. */
		r = ppoll(&pfd, t->keys ? 1 : 0, tsp, &old);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0 && (pfd.revents & POLLIN)) {
			bool now_please = false;

			handle_keys(t, &redraw, &now_please, &quit);
			if (now_please)
				next_ns = 0;
		} else if (r > 0 && (pfd.revents & (POLLHUP | POLLERR))) {
			t->keys = false; /* the terminal went away */
		}
	}
}

static int parse_sort(const char *arg, enum sort_key *out)
{
	static const char *const names[SORT_KEYS] = {"id", "rate", "fill",
						     "drops"};

	for (int i = 0; i < SORT_KEYS; i++)
		if (strcmp(arg, names[i]) == 0) {
			*out = (enum sort_key)i;
			return 0;
		}
	cli_usage_error(CMD, "--sort: '%s' is none of id, rate, fill, drops",
			arg);
	return -EINVAL;
}

int cmd_top(const char *socket, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"delay", required_argument, NULL, 'd'},
	    {"frames", required_argument, NULL, 'n'},
	    {"sort", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct top t = {.delay = 1, .sort = SORT_RATE};
	struct sigaction sa = {.sa_handler = on_signal};
	sigset_t block;
	int c, err, status = 0;

	while ((c = getopt_long(argc, argv, "s:d:n:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			socket = optarg;
			break;
		case 'd':
			if (cli_seconds(CMD, "--delay", optarg, &t.delay) < 0)
				return EXIT_USAGE;
			if (t.delay < 0.05)
				return cli_usage_error(
				    CMD, "--delay: at least 0.05 s");
			break;
		case 'n':
			if (cli_u64(CMD, "--frames", optarg, 1, UINT32_MAX,
				    &t.frames) < 0)
				return EXIT_USAGE;
			break;
		case 'o':
			if (parse_sort(optarg, &t.sort) < 0)
				return EXIT_USAGE;
			break;
		case 'h':
			usage();
			return 0;
		default:
			fprintf(stderr, "Try 'expbus top --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage_error(CMD, "unexpected argument '%s'",
				       argv[optind]);
	err = stats_source_open(CMD, socket, &t.src);
	if (err)
		return err;
	t.order = calloc(STATS_MAX_PRODUCERS, sizeof(*t.order));
	if (!t.order) {
		fprintf(stderr, "expbus top: out of memory\n");
		stats_source_close(&t.src);
		return 1;
	}
	t.screen = isatty(STDOUT_FILENO);
	t.keys = t.screen && isatty(STDIN_FILENO);
	/* Handled in the loop, between frames: see run(). */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGWINCH);
	sigaddset(&block, SIGTSTP);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGWINCH, &sa, NULL);
	if (t.screen)
		sigaction(SIGTSTP, &sa, NULL);
	else
		signal(SIGTSTP, SIG_DFL);
	if (t.screen) {
		term_size(&t);
		err = term_enter(&t);
		if (err < 0) {
			term_leave(&t);
			fprintf(stderr, "expbus top: terminal: %s\n",
				strerror(-err));
			status = 1;
			goto out;
		}
	}
	err = run(&t);
	if (t.screen)
		term_leave(&t);
	if (err < 0) {
		fprintf(stderr, "expbus top: %s\n", strerror(-err));
		status = 1;
	}
out:
	free(t.order);
	stats_view_free(&t.view[0]);
	stats_view_free(&t.view[1]);
	stats_source_close(&t.src);
	return status;
}
