/* stream.h — a stream: a name, a schema, the producers that write to it,
 * and the subscriptions and groups that read from it. */
#ifndef EXPBUSD_STREAM_H
#define EXPBUSD_STREAM_H

#include <stdbool.h>

#include "broker.h"

struct stream *stream_find(struct broker *b, const char *name);
/* A new stream with its stats slot; NULL when all slots are taken or
 * memory runs out. */
struct stream *stream_create(struct broker *b, const char *name,
			     const struct schema *schema);
/* Frees s once it has no producer, subscription or group left. */
void stream_free(struct broker *b, struct stream *s);
int stream_add_producer(struct stream *s, struct producer *p);
void stream_remove_producer(struct stream *s, struct producer *p);
/* Adds sub to s, directly or to the group named group ("" or NULL: none),
 * creating the group if needed. */
int stream_add_subscription(struct broker *b, struct stream *s,
			    struct subscription *sub, const char *group);
/* Takes sub out of s. Returns true when its group keeps it as an orphan
 * (its records go to the other members; the group frees it later). */
bool stream_remove_subscription(struct broker *b, struct stream *s,
				struct subscription *sub);
/* Frees groups left without members (and their orphaned records). */
void stream_prune_groups(struct broker *b, struct stream *s);
/* Frees streams that have had no producer and no subscriber for
 * --stream-linger-ms (their names and stats slots become free); called by
 * housekeeping. */
void streams_reap_unused(struct broker *b);
/* Calls fn on every subscription of s, direct or in a group; fn must not
 * add or remove subscriptions. */
void stream_each_sub_of(struct stream *s,
			void (*fn)(struct subscription *, void *), void *arg);
/* The same for every stream. */
void stream_each_subscription(struct broker *b,
			      void (*fn)(struct subscription *, void *),
			      void *arg);
/* Every group of every stream forgets its games silent for idle_ns. */
void stream_expire_games(struct broker *b, uint64_t idle_ns);

/* Writes into every producer ring of s how many subscriptions it has
 * (with those a restarted broker still waits for), for the broker that
 * adopts the ring after a restart. Call it whenever that changes, before
 * the reply that makes a subscription or a ring known. */
void stream_note_subscriptions(struct broker *b, struct stream *s);
/* Whether s still waits after a restart for the subscribers it had (or,
 * none known, for a first subscription), within --resume-hold-ms; ends
 * the wait otherwise. */
bool stream_held(struct broker *b, struct stream *s);

#endif
