/* group.h — a subscription group: each record goes to one member, every
 * record of a game to the same member while it lives. A group only says
 * which member; it never moves records itself (pump.c does). */
#ifndef EXPBUSD_GROUP_H
#define EXPBUSD_GROUP_H

#include <stdbool.h>

#include "broker.h"

struct consumer_group *group_new(struct stream *s, const char *name);
/* Frees g's memory; its orphans must have been freed. */
void group_free(struct consumer_group *g);
/* The member that has game, or NULL when the game is new (or the group
 * has no member); now: the game is alive at this time. */
struct subscription *group_lookup(struct consumer_group *g, uint32_t game,
				  uint64_t now);
/* Gives game to member sub (the caller chose it: pump.c, by load). */
void group_assign(struct consumer_group *g, uint32_t game,
		  struct subscription *sub, uint64_t now);
/* Forgets game (its last record passed). */
void group_forget_game(struct consumer_group *g, uint32_t game);
/* Forgets games silent for more than idle_ns; returns how many. */
uint32_t group_expire(struct consumer_group *g, uint64_t now, uint64_t idle_ns);
int group_add_member(struct consumer_group *g, struct subscription *sub);
/* Takes sub out of the members. Returns true when g keeps it as an orphan
 * whose unreleased records go to the others first. */
bool group_forget_member(struct consumer_group *g, struct subscription *sub);

#endif
