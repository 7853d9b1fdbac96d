/* prom_text.c — a stats view in the Prometheus text exposition format
 * (0.0.4): what `expbus stat --prometheus` prints and `expbus metrics`
 * serves on /metrics. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>

#include "expbus.h"
#include "prom_text.h"

/* Label values: backslash, double quote and line feed are escaped, as
 * the exposition format requires. */
static void prom_label(FILE *out, const char *name, const char *value,
		       bool first)
{
	fprintf(out, "%s%s=\"", first ? "" : ",", name);
	for (; *value; value++) {
		if (*value == '\\' || *value == '"')
			fprintf(out, "\\%c", *value);
		else if (*value == '\n')
			fprintf(out, "\\n");
		else
			fputc(*value, out);
	}
	fputc('"', out);
}

static void prom_family(FILE *out, const char *name, const char *type,
			const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void producer_labels(FILE *out, const struct stats_view *v,
			    const struct sv_producer *p)
{
	char id[16], pid[16];

	snprintf(id, sizeof(id), "%u", p->id);
	snprintf(pid, sizeof(pid), "%u", p->pid);
	fputc('{', out);
	prom_label(out, "stream", stats_view_stream_name(v, p->stream_id),
		   true);
	prom_label(out, "producer", id, false);
	prom_label(out, "pid", pid, false);
}

/* A reason is the last label, when there is one. */
static void sub_labels(FILE *out, const struct stats_view *v,
		       const struct sv_sub *s, const char *reason)
{
	char id[16], pid[16];

	snprintf(id, sizeof(id), "%u", s->id);
	snprintf(pid, sizeof(pid), "%u", s->pid);
	fputc('{', out);
	prom_label(out, "stream", stats_view_stream_name(v, s->stream_id),
		   true);
	prom_label(out, "subscription", id, false);
	prom_label(out, "pid", pid, false);
	prom_label(out, "group", s->group, false);
	prom_label(out, "policy", sv_policy_name(s->policy), false);
	if (reason)
		prom_label(out, "reason", reason, false);
}

enum pfield { P_RECORDS, P_OCC, P_CAP, P_RATIO, P_STALLS };

static void prom_producers(FILE *out, const struct stats_view *v,
			   const char *name, const char *type, const char *help,
			   enum pfield field)
{
	prom_family(out, name, type, help);
	for (uint32_t i = 0; i < v->n_producers; i++) {
		const struct sv_producer *p = &v->producers[i];

		fputs(name, out);
		producer_labels(out, v, p);
		switch (field) {
		case P_RECORDS:
			fprintf(out, "} %" PRIu64 "\n", p->records_in);
			break;
		case P_OCC:
			fprintf(out, "} %" PRIu64 "\n", p->occupancy);
			break;
		case P_CAP:
			fprintf(out, "} %u\n", p->capacity);
			break;
		case P_RATIO:
			fprintf(out, "} %.6f\n", p->fill);
			break;
		case P_STALLS:
			fprintf(out, "} %" PRIu64 "\n", p->stalls);
			break;
		}
	}
}

enum sfield {
	S_DELIVERED,
	S_BYTES,
	S_FILTERED,
	S_RELEASED,
	S_LAG,
	S_LAG_S,
	S_BATCH_SIZE,
};

static void prom_subs(FILE *out, const struct stats_view *v, const char *name,
		      const char *type, const char *help, enum sfield field)
{
	prom_family(out, name, type, help);
	for (uint32_t i = 0; i < v->n_subs; i++) {
		const struct sv_sub *s = &v->subs[i];
		uint64_t x = 0;

		fputs(name, out);
		sub_labels(out, v, s, NULL);
		switch (field) {
		case S_DELIVERED:
			x = s->delivered;
			break;
		case S_BYTES:
			x = s->delivered_bytes;
			break;
		case S_FILTERED:
			x = s->filtered;
			break;
		case S_RELEASED:
			x = s->released_records;
			break;
		case S_LAG:
			x = s->lag_records;
			break;
		case S_BATCH_SIZE:
			x = s->batch_size;
			break;
		case S_LAG_S:
			fprintf(out, "} %.9f\n", (double)s->lag_ns / 1e9);
			continue;
		}
		fprintf(out, "} %" PRIu64 "\n", x);
	}
}

void prom_text_write(FILE *out, const struct stats_view *v)
{
	static const char *const drop_reason[] = {"ring_full",
						  "subscriber_gone"};
	static const char *const flush_reason[] = {NULL, "full", "timeout",
						   "drain"};
	const char *name;

	prom_family(out, "expbus_broker_info", "gauge",
		    "The broker serving the stats segment; always 1.");
	fprintf(out, "expbus_broker_info{pid=\"%u\"} 1\n", v->broker_pid);
	prom_family(out, "expbus_broker_uptime_seconds", "gauge",
		    "Seconds since the broker started.");
	fprintf(out, "expbus_broker_uptime_seconds %.3f\n",
		v->taken_ns > v->start_ns
		    ? (double)(v->taken_ns - v->start_ns) / 1e9
		    : 0.0);
	prom_family(out, "expbus_broker_loops_total", "counter",
		    "Passes of the broker's event loop.");
	fprintf(out, "expbus_broker_loops_total %" PRIu64 "\n", v->loops);
	prom_family(out, "expbus_broker_sleeps_total", "counter",
		    "Times the broker went to sleep for want of work.");
	fprintf(out, "expbus_broker_sleeps_total %" PRIu64 "\n", v->sleeps);
	prom_family(out, "expbus_protocol_violations_total", "counter",
		    "Peers disconnected for breaking the protocol.");
	fprintf(out, "expbus_protocol_violations_total %" PRIu64 "\n",
		v->violations);
	prom_family(
	    out, "expbus_unclaimed_records_total", "counter",
	    "Records taken from producers that no subscription wanted.");
	fprintf(out, "expbus_unclaimed_records_total %" PRIu64 "\n",
		v->unclaimed);

	prom_family(out, "expbus_stream_records_total", "counter",
		    "Records taken from the stream's producer rings.");
	for (uint32_t i = 0; i < v->n_streams; i++) {
		fprintf(out, "expbus_stream_records_total{");
		prom_label(out, "stream", v->streams[i].name, true);
		fprintf(out, "} %" PRIu64 "\n", v->streams[i].records_in);
	}
	prom_family(out, "expbus_stream_unclaimed_records_total", "counter",
		    "Records of the stream that no subscription wanted.");
	for (uint32_t i = 0; i < v->n_streams; i++) {
		fprintf(out, "expbus_stream_unclaimed_records_total{");
		prom_label(out, "stream", v->streams[i].name, true);
		fprintf(out, "} %" PRIu64 "\n", v->streams[i].unclaimed);
	}

	prom_producers(out, v, "expbus_producer_records_total", "counter",
		       "Records the broker took from the producer's ring.",
		       P_RECORDS);
	prom_producers(
	    out, v, "expbus_producer_ring_occupancy_records", "gauge",
	    "Records committed to the ring and not yet taken.", P_OCC);
	prom_producers(out, v, "expbus_producer_ring_capacity_records", "gauge",
		       "Slots in the producer's ring.", P_CAP);
	prom_producers(out, v, "expbus_producer_ring_occupancy_ratio", "gauge",
		       "Occupancy of the ring over its capacity, 0 to 1.",
		       P_RATIO);
	prom_producers(out, v, "expbus_producer_stalls_total", "counter",
		       "Times a lossless subscription without room held the "
		       "producer's ring.",
		       P_STALLS);

	prom_subs(
	    out, v, "expbus_subscription_delivered_records_total", "counter",
	    "Records in batches published to the subscription.", S_DELIVERED);
	prom_subs(out, v, "expbus_subscription_delivered_bytes_total",
		  "counter",
		  "Column bytes of the records delivered, headers included.",
		  S_BYTES);
	prom_subs(out, v, "expbus_subscription_released_records_total",
		  "counter", "Records in batches the subscriber has released.",
		  S_RELEASED);
	prom_subs(out, v, "expbus_subscription_filtered_records_total",
		  "counter", "Records the subscription's filter turned away.",
		  S_FILTERED);
	name = "expbus_subscription_dropped_records_total";
	prom_family(out, name, "counter",
		    "Records dropped for the subscription, by reason.");
	for (uint32_t i = 0; i < v->n_subs; i++)
		for (int r = 0; r < 2; r++) {
			fputs(name, out);
			sub_labels(out, v, &v->subs[i], drop_reason[r]);
			fprintf(out, "} %" PRIu64 "\n", v->subs[i].dropped[r]);
		}
	name = "expbus_subscription_batches_total";
	prom_family(out, name, "counter",
		    "Batches published to the subscription, by flush reason.");
	for (uint32_t i = 0; i < v->n_subs; i++)
		for (int r = 1; r < 4; r++) {
			fputs(name, out);
			sub_labels(out, v, &v->subs[i], flush_reason[r]);
			fprintf(out, "} %" PRIu64 "\n", v->subs[i].batches[r]);
		}
	prom_subs(out, v, "expbus_subscription_batch_size_records", "gauge",
		  "Records per batch at most.", S_BATCH_SIZE);
	prom_subs(out, v, "expbus_subscription_lag_records", "gauge",
		  "Records routed to the subscription and not yet released.",
		  S_LAG);
	prom_subs(out, v, "expbus_subscription_lag_seconds", "gauge",
		  "Age of the oldest record routed and not yet released.",
		  S_LAG_S);
}
