/* prom_text.h — the broker's counters as Prometheus exposition text. */
#ifndef EXPBUS_TOOLS_PROM_TEXT_H
#define EXPBUS_TOOLS_PROM_TEXT_H

#include <stdio.h>

#include "stats_view.h"

/* Writes every family of v (HELP, TYPE and samples) to out: broker,
 * streams, producer rings and subscriptions, labelled by stream,
 * producer, subscription, pid, group and policy. */
void prom_text_write(FILE *out, const struct stats_view *v);

#endif
