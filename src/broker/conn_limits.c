/* conn_limits.c — control connections counted per uid. */
#include "conn_limits.h"

#include <stdlib.h>

static struct uid_conns *find(struct conn_limits *l, uid_t uid)
{
	for (uint32_t i = 0; i < l->n; i++)
		if (l->v[i].uid == uid)
			return &l->v[i];
	return NULL;
}

bool conn_limits_admit(struct conn_limits *l, uid_t uid)
{
	struct uid_conns *e = find(l, uid);

	if (!e) {
		if (l->n == l->cap) {
			uint32_t cap = l->cap ? l->cap * 2 : 8;
			struct uid_conns *v = realloc(l->v, sizeof(*v) * cap);
			if (!v)
				return false;
			l->v = v;
			l->cap = cap;
		}
		e = &l->v[l->n++];
		e->uid = uid;
		e->n = 0;
	}
	if (e->n >= l->max_per_uid)
		return false;
	e->n++;
	return true;
}

void conn_limits_release(struct conn_limits *l, uid_t uid)
{
	struct uid_conns *e = find(l, uid);

	if (!e || e->n == 0)
		return;
	if (--e->n == 0) /* keep the array as short as the uids in use */
		*e = l->v[--l->n];
}

void conn_limits_free(struct conn_limits *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}
