/* stream.c — streams: a name, a schema, the producers that write to it and
 * the subscriptions and groups that read from it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "stats.h"
#include "stream.h"
#include "subscription.h"

struct stream *stream_find(struct broker *b, const char *name)
{
	for (int i = 0; i < STATS_MAX_STREAMS; i++)
		if (b->streams[i] && strcmp(b->streams[i]->name, name) == 0)
			return b->streams[i];
	return NULL;
}

struct stream *stream_create(struct broker *b, const char *name,
			     const struct schema *schema)
{
	struct stream *s;
	int slot = -1;

	for (int i = 0; i < STATS_MAX_STREAMS && slot < 0; i++)
		if (!b->streams[i])
			slot = i;
	if (slot < 0)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	strcpy(s->name, name);
	s->id = (uint32_t)slot;
	s->schema = *schema;
	schema_format(schema, s->canonical, sizeof(s->canonical));
	s->st = &s->mine;
	s->st->id = s->id;
	strcpy(s->st->name, name);
	s->st->schema_hash = schema->hash;
	s->st->data_size = schema->data_size;
	/* Long schemas are cut here; the full text is in every reply. */
	memcpy(s->st->schema, s->canonical, sizeof(s->st->schema) - 1);
	s->st->schema[sizeof(s->st->schema) - 1] = '\0';
	s->st->in_use = 1;
	stats_claim_stream(b, s, &b->stats->streams[slot]);
	b->streams[slot] = s;
	return s;
}

/* Grows an array of pointers so that one more fits. */
static int grow(void *arrayp, uint32_t n, uint32_t *cap)
{
	void ***array = arrayp;
	void **bigger;
	uint32_t want;

	if (n < *cap)
		return 0;
	want = *cap ? *cap * 2 : 8;
	bigger = realloc(*array, sizeof(void *) * want);
	if (!bigger)
		return -ENOMEM;
	*array = bigger;
	*cap = want;
	return 0;
}

/* Removes x from an array of pointers, keeping the order. */
static bool drop(void **array, uint32_t *n, const void *x)
{
	for (uint32_t i = 0; i < *n; i++) {
		if (array[i] == x) {
			memmove(&array[i], &array[i + 1],
				sizeof(void *) * (*n - i - 1));
			(*n)--;
			return true;
		}
	}
	return false;
}

void stream_free(struct broker *b, struct stream *s)
{
	stream_prune_groups(b, s);
	stats_forget_stream(b, s);
	b->streams[s->id] = NULL;
	free(s->producers);
	free(s->subs);
	free(s->groups);
	free(s);
}

int stream_add_producer(struct stream *s, struct producer *p)
{
	if (grow(&s->producers, s->n_producers, &s->cap_producers) < 0)
		return -ENOMEM;
	s->producers[s->n_producers++] = p;
	return 0;
}

void stream_remove_producer(struct stream *s, struct producer *p)
{
	drop((void **)s->producers, &s->n_producers, p);
	if (s->rr >= s->n_producers)
		s->rr = 0;
}

static struct consumer_group *group_find(struct stream *s, const char *name)
{
	for (uint32_t i = 0; i < s->n_groups; i++)
		if (strcmp(s->groups[i]->name, name) == 0)
			return s->groups[i];
	return NULL;
}

int stream_add_subscription(struct broker *b, struct stream *s,
			    struct subscription *sub, const char *group)
{
	struct consumer_group *g;

	(void)b;
	if (!group || !group[0]) {
		if (grow(&s->subs, s->n_subs, &s->cap_subs) < 0)
			return -ENOMEM;
		s->subs[s->n_subs++] = sub;
		return 0;
	}
	g = group_find(s, group);
	if (!g) {
		if (grow(&s->groups, s->n_groups, &s->cap_groups) < 0)
			return -ENOMEM;
		g = group_new(s, group);
		if (!g)
			return -ENOMEM;
		s->groups[s->n_groups++] = g;
	}
	return group_add_member(g, sub);
}

void stream_prune_groups(struct broker *b, struct stream *s)
{
	for (uint32_t i = 0; i < s->n_groups;) {
		struct consumer_group *g = s->groups[i];
		if (g->n_members) {
			i++;
			continue;
		}
		/* No member left: its orphans have no one to go to. */
		while (g->n_orphans)
			subscription_free(b, g->orphans[--g->n_orphans]);
		drop((void **)s->groups, &s->n_groups, g);
		group_free(g);
	}
}

bool stream_remove_subscription(struct broker *b, struct stream *s,
				struct subscription *sub)
{
	struct consumer_group *g = sub->group;
	bool orphaned;

	(void)b;
	if (!g) {
		drop((void **)s->subs, &s->n_subs, sub);
		return false;
	}
	orphaned = group_forget_member(g, sub);
	if (g->n_members == 0 && g->n_orphans == 0) {
		drop((void **)s->groups, &s->n_groups, g);
		group_free(g);
	}
	return orphaned;
}

void stream_expire_games(struct broker *b, uint64_t idle_ns)
{
	for (int i = 0; i < STATS_MAX_STREAMS; i++) {
		struct stream *s = b->streams[i];
		if (!s)
			continue;
		for (uint32_t g = 0; g < s->n_groups; g++)
			(void)group_expire(s->groups[g], b->now_ns, idle_ns);
	}
}

void stream_each_sub_of(struct stream *s,
			void (*fn)(struct subscription *, void *), void *arg)
{
	for (uint32_t j = 0; j < s->n_subs; j++)
		fn(s->subs[j], arg);
	for (uint32_t g = 0; g < s->n_groups; g++)
		for (uint32_t j = 0; j < s->groups[g]->n_members; j++)
			fn(s->groups[g]->members[j], arg);
}

void stream_each_subscription(struct broker *b,
			      void (*fn)(struct subscription *, void *),
			      void *arg)
{
	for (int i = 0; i < STATS_MAX_STREAMS; i++)
		if (b->streams[i])
			stream_each_sub_of(b->streams[i], fn, arg);
}

static uint32_t count_live(struct subscription *const *subs, uint32_t n)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < n; i++)
		if (!subs[i]->dead)
			k++;
	return k;
}

void stream_note_subscriptions(struct broker *b, struct stream *s)
{
	uint32_t n = count_live(s->subs, s->n_subs);

	/* A stopping broker's subscribers hang up to come back to the next
	 * one: they stay counted. */
	if (b->stopping)
		return;
	for (uint32_t g = 0; g < s->n_groups; g++)
		n += count_live(s->groups[g]->members, s->groups[g]->n_members);
	/* While the stream waits, those not back yet still count: a broker
	 * killed now leaves the same wait to the next one. */
	if (s->hold_until_ns && s->subs_before > s->subs_back)
		n += s->subs_before - s->subs_back;
	for (uint32_t i = 0; i < s->n_producers; i++) {
		struct producer *p = s->producers[i];

		/* Relaxed: a count for the next broker, no data hangs on it;
		 * the broker's stores are all in memory if it is killed
		 * (SIGKILL cannot reorder what a thread already stored). */
		if (p->seg && !p->broken)
			atomic_store_explicit(&p->seg->subscriptions, n,
					      memory_order_relaxed);
	}
}

bool stream_held(struct broker *b, struct stream *s)
{
	bool back;

	if (!s->hold_until_ns)
		return false;
	back = s->subs_before ? s->subs_back >= s->subs_before
			      : s->n_subs || s->n_groups;
	if (!back && b->now_ns < s->hold_until_ns)
		return true;
	if (s->subs_before)
		log_info(b,
			 "stream '%s': %u of the %u subscribers the last "
			 "broker had are back%s; its records flow again",
			 s->name, back ? s->subs_before : s->subs_back,
			 s->subs_before,
			 back ? "" : " (--resume-hold-ms is up)");
	else
		log_info(b, "stream '%s': %s; its records flow again", s->name,
			 back ? "a subscriber came" : "--resume-hold-ms is up");
	s->hold_until_ns = 0;
	stream_note_subscriptions(b, s);
	return false;
}

static bool stream_unused(const struct stream *s)
{
	if (s->n_producers || s->n_subs)
		return false;
	for (uint32_t g = 0; g < s->n_groups; g++)
		if (s->groups[g]->n_members)
			return false;
	return true;
}

void streams_reap_unused(struct broker *b)
{
	for (int i = 0; i < STATS_MAX_STREAMS; i++) {
		struct stream *s = b->streams[i];

		if (!s)
			continue;
		if (!stream_unused(s)) {
			s->unused_since_ns = 0;
			continue;
		}
		if (!s->unused_since_ns)
			s->unused_since_ns = b->now_ns;
		else if (b->now_ns - s->unused_since_ns >=
			 b->cfg.stream_linger_ns) {
			log_info(b,
				 "stream '%s' freed: no producer and no "
				 "subscriber for %llu ms",
				 s->name,
				 (unsigned long long)(b->cfg.stream_linger_ns /
						      1000000u));
			stream_free(b, s);
		}
	}
}
