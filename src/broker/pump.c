/* pump.c — the data path: take records from every producer ring of a
 * stream, filter and route them, and copy each once into the batch it
 * belongs to (batch.c); a dead group member's unreleased records are
 * routed again first. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "coalesce.h"
#include "group.h"
#include "hold.h"
#include "producer.h"
#include "pump.h"
#include "ready.h"
#include "stats.h"
#include "stream.h"
#include "subscription.h"

/* A ring found empty this long after its last record is parked: its
 * producer's next commit rings the doorbell (a syscall on its side), so
 * a ring that empties for a moment under load stays active. */
#define PARK_AFTER_NS (200u * 1000u)

/* The member of g that takes game's records: the one that has it, else
 * (a new game) the member with the least outstanding work, ties taken in
 * turn. */
static struct subscription *
member_for_game(struct broker *b, struct consumer_group *g, uint32_t game)
{
	struct subscription *best = NULL, *sub;
	uint64_t best_load = UINT64_MAX;
	uint32_t n = g->n_members, at = 0;

	sub = group_lookup(g, game, b->now_ns);
	if (sub || n == 0)
		return sub;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = (g->next_member + k) % n;
		uint64_t load;

		sub = g->members[i];
		if (sub->dead)
			continue;
		load = batch_outstanding(b, sub);
		if (!best || load < best_load) {
			best = sub;
			best_load = load;
			at = i;
		}
	}
	if (!best)
		return g->members[0]; /* all dead: route() skips it */
	g->next_member = (at + 1) % n;
	group_assign(g, game, best, b->now_ns);
	return best;
}

/* A game's last record passed: every group of s forgets the game. */
static void game_over(struct stream *s, const struct expbus_record_header *h)
{
	if (!(h->flags & (EXPBUS_RECORD_DONE | EXPBUS_RECORD_TRUNCATED)))
		return;
	for (uint32_t i = 0; i < s->n_groups; i++)
		group_forget_game(s->groups[i], h->game);
}

/* Rebuilds record i of a batch slot into hdr and data (the row layout). */
static void gather(const struct subscription *sub, const uint8_t *slot,
		   uint32_t i, struct expbus_record_header *hdr, uint64_t *seq,
		   uint32_t *source, uint8_t *data)
{
	const struct schema *s = &sub->stream->schema;
	const uint64_t *off = sub->col_offset;

	*seq = ((const uint64_t *)(slot + off[0]))[i];
	hdr->seq = *seq;
	hdr->timestamp_ns = ((const uint64_t *)(slot + off[1]))[i];
	*source = ((const uint32_t *)(slot + off[2]))[i];
	hdr->game = ((const uint32_t *)(slot + off[3]))[i];
	hdr->player = ((const uint32_t *)(slot + off[4]))[i];
	hdr->turn = ((const uint32_t *)(slot + off[5]))[i];
	hdr->flags = ((const uint32_t *)(slot + off[6]))[i];
	for (uint32_t f = 0; f < s->nfields; f++) {
		uint32_t size = sub->col_size[HEADER_COLUMNS + f];
		memcpy(data + s->fields[f].offset,
		       slot + off[HEADER_COLUMNS + f] + (uint64_t)i * size,
		       size);
	}
}

/* Hands one orphaned record to the member that owns its game now. Returns
 * false when that member is lossless and has no room: try again later. */
static bool reroute(struct broker *b, struct consumer_group *g,
		    const struct subscription *dead, const uint8_t *slot,
		    uint32_t i, uint8_t *data)
{
	struct expbus_record_header hdr;
	struct subscription *to;
	struct producer *src;
	uint32_t source;
	uint64_t seq;

	gather(dead, slot, i, &hdr, &seq, &source, data);
	/* A record of dead's open batch holds its ring's head, and holds it
	 * in the batch it goes to now; one from a published batch holds
	 * nothing (it was published: the reader dedups it). */
	src = slot == dead->open ? hold_of(dead, i) : NULL;
	to = member_for_game(b, g, hdr.game);
	if (!to || !filter_match(&to->filter, &hdr))
		return true;
	if (!batch_has_room(b, to)) {
		if (to->policy == EXPBUS_LOSSLESS) {
			to->blocked = true;
			return false;
		}
		batch_dropped(b, to);
		return true;
	}
	batch_deliver(b, to, &hdr, seq, source, src, data);
	if (hdr.flags & (EXPBUS_RECORD_DONE | EXPBUS_RECORD_TRUNCATED))
		group_forget_game(g, hdr.game);
	return true;
}

static bool drain_orphans(struct broker *b, struct consumer_group *g)
{
	uint8_t *data = NULL;

	while (g->n_orphans) {
		struct subscription *dead = g->orphans[0];
		uint64_t tail = dead->ring.pos; /* batches it had published */

		if (g->n_members == 0)
			break;
		if (!data &&
		    !(data = malloc(dead->stream->schema.data_size + 8)))
			return false;
		while (g->orphan_pos <= tail) {
			const uint8_t *slot;
			uint32_t count;

			if (g->orphan_pos < tail) {
				slot = ring_slot(&dead->ring, g->orphan_pos);
				count =
				    ((const struct expbus_batch *)slot)->count;
			} else {
				slot = dead->open;
				count = dead->open ? dead->open_count : 0;
			}
			while (g->orphan_index < count) {
				if (!reroute(b, g, dead, slot, g->orphan_index,
					     data)) {
					free(data);
					return false;
				}
				g->orphan_index++;
			}
			g->orphan_pos++;
			g->orphan_index = 0;
		}
		memmove(&g->orphans[0], &g->orphans[1],
			sizeof(*g->orphans) * (g->n_orphans - 1));
		g->n_orphans--;
		batch_discard(b, dead); /* its records went to the others */
		subscription_free(b, dead);
		if (g->n_orphans) {
			g->orphan_pos = g->orphans[0]->ring.cached;
			g->orphan_index = 0;
		}
	}
	free(data);
	/* No member left to take them: they are lost with the group. */
	while (g->n_orphans) {
		struct subscription *dead = g->orphans[--g->n_orphans];
		subscription_free(b, dead);
	}
	return true;
}

#define MAX_TARGETS (STATS_MAX_SUBS + 1)

/* Routes one record to every subscription that wants it. Returns false,
 * delivering nothing, when a lossless one has no room: the record stays in
 * its ring and back-pressure builds up behind it. */
static bool route(struct broker *b, struct stream *s, struct producer *p,
		  const struct expbus_record_header *hdr, uint64_t seq,
		  const uint8_t *data)
{
	struct subscription *to[MAX_TARGETS];
	bool room[MAX_TARGETS];
	uint32_t n = 0;

	for (uint32_t i = 0; i < s->n_subs && n < MAX_TARGETS; i++) {
		struct subscription *sub = s->subs[i];
		if (sub->dead)
			continue;
		if (!filter_match(&sub->filter, hdr)) {
			stat_add(&sub->st->filtered, 1);
			stats_touch_sub(b, sub);
			continue;
		}
		to[n++] = sub;
	}
	for (uint32_t i = 0; i < s->n_groups && n < MAX_TARGETS; i++) {
		struct subscription *sub =
		    member_for_game(b, s->groups[i], hdr->game);
		if (!sub || sub->dead)
			continue;
		if (!filter_match(&sub->filter, hdr)) {
			stat_add(&sub->st->filtered, 1);
			stats_touch_sub(b, sub);
			continue;
		}
		to[n++] = sub;
	}
	if (n == 0) {
		stat_add(&s->st->unclaimed, 1);
		b->count.unclaimed++;
		return true;
	}
	for (uint32_t i = 0; i < n; i++) {
		room[i] = batch_has_room(b, to[i]);
		if (!room[i]) {
			if (to[i]->dead)
				return false; /* gone: routed afresh next pass
					       */
			if (to[i]->policy == EXPBUS_LOSSLESS) {
				to[i]->blocked = true;
				return false;
			}
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		if (room[i]) {
			batch_deliver(b, to[i], hdr, seq, p->id, p, data);
		} else {
			batch_dropped(b, to[i]);
		}
	}
	return true;
}

static void producer_violation(struct broker *b, struct producer *p)
{
	log_warn(b,
		 "producer %u (pid %d) on stream '%s': tail %llu is impossible "
		 "for head %llu and a ring of %llu; disconnecting it",
		 p->id, p->conn ? (int)p->conn->pid : 0, p->stream->name,
		 (unsigned long long)atomic_load_explicit(&p->seg->prod.pos,
							  memory_order_relaxed),
		 (unsigned long long)p->ring.pos,
		 (unsigned long long)p->ring.capacity);
	p->broken = true;
	b->reap_pending = true;
	b->count.violations++;
}

/* Counts the games p's records went through (the stats' games_seen and
 * last_game), from our copy of their game ids. */
static void note_games(struct producer *p, const uint32_t *game, uint32_t k)
{
	for (uint32_t j = 0; j < k; j++) {
		if (game[j] == p->last_game)
			continue;
		p->last_game = game[j];
		stat_add(&p->st->games_seen, 1);
		stat_set(&p->st->last_game, game[j]);
	}
}

/* Whether every record of s goes to the same subscriptions: no group (a
 * member per game), no filter. Then runs of records are routed whole. */
static bool routes_whole(const struct stream *s)
{
	if (s->n_groups)
		return false;
	for (uint32_t i = 0; i < s->n_subs; i++) {
		const struct filter *f = &s->subs[i]->filter;

		if (f->games || f->players || f->min_turn)
			return false;
	}
	return true;
}

/* Routes records one at a time (filters, groups): up to avail of them,
 * from p->taken. Returns how many; sets p->stalled when a lossless
 * subscription has no room. */
static uint32_t pump_records(struct broker *b, struct stream *s,
			     struct producer *p, uint32_t avail)
{
	uint32_t taken = 0;

	while (taken < avail) {
		uint64_t seq = p->taken + taken;
		const struct expbus_record_header *rec =
		    ring_slot(&p->ring, seq);
		struct expbus_record_header hdr;

		/* One read of the header into our memory: the producer may
		 * write the slot under us, and then hurts only itself. */
		memcpy(&hdr, rec, sizeof(hdr));
		if (!route(b, s, p, &hdr, seq, (const uint8_t *)(rec + 1))) {
			p->stalled = true;
			break;
		}
		game_over(s, &hdr);
		note_games(p, &hdr.game, 1);
		taken++;
	}
	return taken;
}

/* Routes records in runs (routes_whole): what cannot change within a run
 * (who takes it, how much room each has) is decided once per run, and
 * the run is copied column by column. Same contract as pump_records. */
static uint32_t pump_runs(struct broker *b, struct stream *s,
			  struct producer *p, uint32_t avail)
{
	struct subscription *to[MAX_TARGETS];
	uint32_t room[MAX_TARGETS], n = 0, taken = 0;

	for (uint32_t i = 0; i < s->n_subs && n < MAX_TARGETS; i++)
		if (!s->subs[i]->dead)
			to[n++] = s->subs[i];
	while (taken < avail) {
		uint64_t pos = p->taken + taken;
		uint32_t k = avail - taken;
		struct run_copy from = {0};

		for (uint32_t i = 0; i < n; i++) {
			room[i] = to[i]->dead ? 0 : batch_room(b, to[i]);
			/* Gone since the run began (it broke the protocol,
			 * here or in batch_room): the rest is routed without
			 * it, afresh, next pass. */
			if (to[i]->dead) {
				p->stalled = true;
				return taken;
			}
			if (room[i]) {
				if (room[i] < k)
					k = room[i];
				continue;
			}
			/* Full: a lossless one holds the run back. */
			if (to[i]->policy == EXPBUS_LOSSLESS) {
				to[i]->blocked = true;
				p->stalled = true;
				return taken;
			}
		}
		for (uint32_t i = 0; i < n; i++) {
			if (room[i])
				batch_take_run(b, to[i], p, pos, k, &from);
			else
				batch_dropped_n(b, to[i], k);
		}
		if (from.sub) {
			note_games(p,
				   (const uint32_t *)(from.slot +
						      from.sub->col_offset[3]) +
				       from.at,
				   k);
		} else {
			/* Nobody took it: the ids straight from the ring, each
			 * read once. */
			for (uint32_t j = 0; j < k; j++) {
				const struct expbus_record_header *rec =
				    ring_slot(&p->ring, pos + j);
				uint32_t game;

				memcpy(&game, &rec->game, sizeof(game));
				note_games(p, &game, 1);
			}
		}
		if (n == 0) {
			stat_add(&s->st->unclaimed, k);
			b->count.unclaimed += k;
		}
		taken += k;
	}
	return taken;
}

struct unblock {
	struct broker *b;
	const struct producer *p;
};

static void publish_holding(struct subscription *sub, void *arg)
{
	const struct unblock *u = arg;

	if (!sub->dead && hold_has(sub, u->p))
		batch_publish(u->b, sub, EXPBUS_FLUSH_TIMEOUT);
}

/* Open batches that keep p's producer waiting (hold_blocks_producer): a
 * batch bigger than the ring never fills, and each would wait for its
 * delay with the game stalled. They are published now, counted as
 * timeouts (their records could wait no longer). */
static void unblock_ring(struct broker *b, struct stream *s, struct producer *p)
{
	struct unblock u = {b, p};

	if (!hold_blocks_producer(p))
		return;
	/* A fresh look at the tail: records committed since we cached it
	 * are taken first (the next pass), and may fill those batches. */
	if (ring_consumer_ready(&p->ring, p->taken - p->ring.pos, UINT64_MAX) !=
	    0) {
		b->more = true;
		return;
	}
	stream_each_sub_of(s, publish_holding, &u);
}

/* Takes up to BROKER_CHUNK records from p, past those it took before (the
 * head moves at hold_release_heads). Returns how many. */
static uint32_t pump_producer(struct broker *b, struct stream *s,
			      struct producer *p)
{
	int avail =
	    ring_consumer_ready(&p->ring, p->taken - p->ring.pos, BROKER_CHUNK);
	uint32_t taken;

	if (avail < 0) {
		producer_violation(b, p);
		return 0;
	}
	p->stalled = false;
	/* Nothing new: its counters and the tail it shows are as they were,
	 * so its stats slot is left alone (a tick may look at many such
	 * rings). Only a game waiting on batches we hold needs us. */
	if (avail == 0) {
		unblock_ring(b, s, p);
		return 0;
	}
	taken = routes_whole(s) ? pump_runs(b, s, p, (uint32_t)avail)
				: pump_records(b, s, p, (uint32_t)avail);
	if (p->stalled)
		stat_add(&p->st->stalls, 1);
	if (taken) {
		p->taken += taken;
		hold_queue(b, p);
	}
	unblock_ring(b, s, p);
	stat_add(&p->st->records_in, taken);
	stat_add(&s->st->records_in, taken);
	stat_set(&p->st->tail_seen, p->ring.cached);
	stats_touch_producer(b, p);
	stats_touch_stream(b, s);
	return taken;
}

void pump_refresh_tails(struct broker *b)
{
	for (int i = 0; i < STATS_MAX_STREAMS; i++) {
		struct stream *s = b->streams[i];
		if (!s)
			continue;
		for (uint32_t j = 0; j < s->n_producers; j++) {
			struct producer *p = s->producers[j];
			if (p->broken)
				continue;
			/* Asking for more than a ring forces a fresh, validated
			 * load of the tail; the data path only reloads it when
			 * what it cached runs short. */
			if (ring_consumer_ready(&p->ring, 0, UINT64_MAX) < 0) {
				producer_violation(b, p);
				continue;
			}
			stat_set(&p->st->tail_seen, p->ring.cached);
			stats_touch_producer(b, p);
		}
	}
}

/* Stream-wide work before its rings: a resumed stream waiting for its
 * lossless subscribers, a dead group member's records to hand on first. Sets
 * s->stalled when the stream's rings must wait. */
static void pump_stream(struct broker *b, struct stream *s)
{
	s->stalled = false;
	if (stream_held(b, s)) {
		s->stalled = true; /* the loop wakes within 200 ms */
		return;
	}
	for (uint32_t i = 0; i < s->n_groups; i++) {
		if (!drain_orphans(b, s->groups[i])) {
			s->stalled = true;
			return;
		}
	}
	stream_prune_groups(b, s);
}

int pump_all(struct broker *b)
{
	uint32_t work = 0, i = 0;
	/* Coalescing, a ring is looked at every tick: parked only after
	 * COALESCE_PARK_TICKS of them without news. */
	uint64_t park_after =
	    b->tick_ns ? b->tick_ns * COALESCE_PARK_TICKS : PARK_AFTER_NS;

	b->more = false;
	/* The rings parked on the ready sets that got news, then those that
	 * got none for COALESCE_PARK_TICKS: parked for good. */
	ready_take_all(b, producer_ready_rang);
	if (b->coalescing && b->now_ns > park_after)
		producer_ready_expire(b, b->now_ns - park_after);

	for (int k = 0; k < STATS_MAX_STREAMS; k++)
		if (b->streams[k])
			pump_stream(b, b->streams[k]);
	/* Only the active rings: a parked ring's producer rings its doorbell
	 * when it commits (producer_park). Parking swaps the last active
	 * producer into slot i, which is then visited in its turn. */
	while (i < b->n_active) {
		struct producer *p = b->active[i];
		uint32_t taken;

		if (p->broken) {
			b->reap_pending = true;
			i++;
			continue;
		}
		if (p->stream->stalled) {
			i++;
			continue;
		}
		b->count.ring_visits++;
		taken = pump_producer(b, p->stream, p);
		work += taken;
		/* Records it knows of and did not take (the chunk limit, or
		 * the end of the ring's memory): the loop passes again. */
		if (taken && !p->stalled && p->ring.cached != p->taken)
			b->more = true;
		if (taken || p->stalled || p->broken) {
			if (taken)
				p->news_ns = b->now_ns;
			i++;
			continue;
		}
		if (p->dead) {
			b->reap_pending = true; /* drained: free it */
			i++;
			continue;
		}
		/* Coalescing, empty since the last tick: parked on the ready
		 * set, which the next passes look at instead of its ring. */
		if (b->coalescing && p->ready) {
			if (b->now_ns - p->news_ns < b->tick_ns / 2 ||
			    !producer_ready_park(b, p))
				i++;
			continue;
		}
		/* Empty for a while: park it, unless news came meanwhile. */
		if (b->now_ns - p->news_ns < park_after || !producer_park(b, p))
			i++;
	}
	/* Batches published in this pass and records taken that no open
	 * batch holds: the heads move now, once per ring. */
	hold_release_heads(b);
	return (int)work;
}

static void sub_prepare(struct subscription *sub, void *arg)
{
	bool *ok = arg;

	if (sub->blocked && !sub->dead &&
	    ring_producer_prepare_sleep(&sub->ring, 0) != 0)
		*ok = false;
}

static void sub_done(struct subscription *sub, void *arg)
{
	(void)arg;
	ring_producer_sleep_done(&sub->ring);
	sub->blocked = false;
}

bool pump_prepare_sleep(struct broker *b, bool coalesce)
{
	bool ok = true;

	/* O(active rings): the parked ones have their flag up already. */
	for (uint32_t i = 0; i < b->n_active;) {
		struct producer *p = b->active[i];
		/* A stalled ring waits for a subscriber's release, which
		 * rings that subscription's doorbell instead; a held stream
		 * waits for the timer. */
		if (p->broken || p->stalled || p->stream->stalled || p->dead) {
			i++;
			continue;
		}
		/* Coalescing: the timer comes back to it; its producer rings
		 * only for a burst (the last pass emptied it, or set
		 * b->more and the loop did not sleep). */
		if (coalesce) {
			/* Holding half the ring or more in open batches, we
			 * want to hear when its producer waits on it full
			 * (its commits may never cross half again). */
			uint32_t how = 2 * hold_span(p) >= p->ring.capacity
					   ? RING_WATCH_HELD
					   : RING_WATCH_HALF;

			if (p->watching != how) {
				ring_consumer_watch(&p->ring, how);
				p->watching = how;
			}
			/* Its producer waits for batches we hold: another
			 * pass publishes them. (No fence after the flag, a
			 * hint: a producer that waits after this look rings
			 * the doorbell, or the timer comes.) */
			if (hold_blocks_producer(p))
				ok = false;
			i++;
			continue;
		}
		if (producer_park(b, p))
			continue; /* the last one moved into slot i */
		ok = false;
		i++;
	}
	stream_each_subscription(b, sub_prepare, &ok);
	return ok;
}

void pump_sleep_done(struct broker *b)
{
	/* Parked producers keep their flag up: it is their doorbell's
	 * trigger, lowered when they are activated again. */
	stream_each_subscription(b, sub_done, NULL);
}
