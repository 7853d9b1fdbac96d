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
/* The member that takes game's records (a new game is given one), or NULL
 * when the group has no member. */
struct subscription *group_route(struct consumer_group *g, uint32_t game);
int group_add_member(struct consumer_group *g, struct subscription *sub);
/* Takes sub out of the members. Returns true when g keeps it as an orphan
 * whose unreleased records go to the others first. */
bool group_forget_member(struct consumer_group *g, struct subscription *sub);

#endif
