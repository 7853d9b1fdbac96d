/* catalog.c — ListStreams and GetStreamStats: the broker's stats segment
 * (read through tools/stats_view.c, as `expbus stat` reads it) and the
 * bridge's own remote subscriptions, packed with protobuf-c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge.h"
#include "expbus.pb-c.h"
#include "stats_view.h"

/* stats_view.c takes its clock from the CLI; the bridge lends its own. */
uint64_t cli_now_ns(void);
uint64_t cli_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int snapshot(struct server *srv, struct stats_view *v, char *msg,
		    size_t len)
{
	const void *seg;
	size_t size;
	int err;

	/* The queue thread is the only user of srv->bus. */
	err = expbus_stats_map(srv->bus, &seg, &size);
	if (err < 0) {
		snprintf(msg, len, "cannot read the broker's counters: %s",
			 expbus_last_error(srv->bus));
		return err == -ENOENT ? -ECONNREFUSED : err;
	}
	memset(v, 0, sizeof(*v));
	err = stats_view_take(seg, v);
	expbus_stats_unmap(seg, size);
	if (err < 0)
		snprintf(msg, len, "out of memory");
	return err;
}

static int pack(const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	*out = malloc(*len ? *len : 1);
	if (!*out)
		return -ENOMEM;
	protobuf_c_message_pack(m, *out);
	return 0;
}

int catalog_list(struct server *srv, uint8_t **out, size_t *len, char *msg,
		 size_t msg_len)
{
	Expbus__V1__ListStreamsResponse r =
	    EXPBUS__V1__LIST_STREAMS_RESPONSE__INIT;
	Expbus__V1__StreamInfo *infos, **ptrs;
	struct stats_view v;
	int err = snapshot(srv, &v, msg, msg_len);

	if (err < 0)
		return err;
	infos = calloc(v.n_streams + 1, sizeof(*infos));
	ptrs = calloc(v.n_streams + 1, sizeof(*ptrs));
	if (!infos || !ptrs) {
		err = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < v.n_streams; i++) {
		expbus__v1__stream_info__init(&infos[i]);
		infos[i].name = v.streams[i].name;
		infos[i].schema = v.streams[i].schema;
		infos[i].schema_hash = v.streams[i].schema_hash;
		ptrs[i] = &infos[i];
	}
	r.n_streams = v.n_streams;
	r.streams = ptrs;
	err = pack(&r.base, out, len);
out:
	free(infos);
	free(ptrs);
	stats_view_free(&v);
	return err;
}

int catalog_stats(struct server *srv, const char *stream, uint8_t **out,
		  size_t *len, char *msg, size_t msg_len)
{
	Expbus__V1__GetStreamStatsResponse r =
	    EXPBUS__V1__GET_STREAM_STATS_RESPONSE__INIT;
	Expbus__V1__StreamStats *ss = NULL, **ssp = NULL;
	Expbus__V1__ProducerStats *ps = NULL, **psp = NULL;
	Expbus__V1__SubscriptionStats *us = NULL, **usp = NULL;
	Expbus__V1__RemoteSubscriptionStats *rs = NULL, **rsp = NULL;
	struct session_stats *sl = NULL;
	struct stats_view v;
	uint32_t nss = 0, nrs;
	int err = snapshot(srv, &v, msg, msg_len);

	if (err < 0)
		return err;
	err = -ENOMEM;
	ss = calloc(v.n_streams + 1, sizeof(*ss));
	ssp = calloc(v.n_streams + 1, sizeof(*ssp));
	ps = calloc(v.n_producers + 1, sizeof(*ps));
	psp = calloc(v.n_producers + 1, sizeof(*psp));
	us = calloc(v.n_subs + 1, sizeof(*us));
	usp = calloc(v.n_subs + 1, sizeof(*usp));
	sl = calloc(srv->cfg->max_subscriptions + 1, sizeof(*sl));
	rs = calloc(srv->cfg->max_subscriptions + 1, sizeof(*rs));
	rsp = calloc(srv->cfg->max_subscriptions + 1, sizeof(*rsp));
	if (!ss || !ssp || !ps || !psp || !us || !usp || !sl || !rs || !rsp)
		goto out;
	for (uint32_t i = 0, np = 0, nu = 0; i < v.n_streams; i++) {
		const struct sv_stream *st = &v.streams[i];
		Expbus__V1__StreamStats *o = &ss[nss];

		if (stream && stream[0] && strcmp(stream, st->name))
			continue;
		expbus__v1__stream_stats__init(o);
		o->name = (char *)st->name;
		o->schema = (char *)st->schema;
		o->schema_hash = st->schema_hash;
		o->records_in = st->records_in;
		o->unclaimed = st->unclaimed;
		o->producers = &psp[np];
		for (uint32_t k = 0; k < v.n_producers; k++) {
			const struct sv_producer *p = &v.producers[k];

			if (p->stream_id != st->id)
				continue;
			expbus__v1__producer_stats__init(&ps[np]);
			ps[np].id = p->id;
			ps[np].pid = p->pid;
			ps[np].capacity = p->capacity;
			ps[np].records_in = p->records_in;
			ps[np].occupancy = p->occupancy;
			ps[np].stalls = p->stalls;
			psp[np] = &ps[np];
			np++;
			o->n_producers++;
		}
		o->subscriptions = &usp[nu];
		for (uint32_t k = 0; k < v.n_subs; k++) {
			const struct sv_sub *u = &v.subs[k];
			uint64_t dropped = 0;

			if (u->stream_id != st->id)
				continue;
			for (int d = 0; d < DROP_REASONS; d++)
				dropped += u->dropped[d];
			expbus__v1__subscription_stats__init(&us[nu]);
			us[nu].id = u->id;
			us[nu].pid = u->pid;
			us[nu].policy =
			    u->policy == EXPBUS_LOSSY
				? EXPBUS__V1__POLICY__POLICY_LOSSY
				: EXPBUS__V1__POLICY__POLICY_LOSSLESS;
			us[nu].batch_size = u->batch_size;
			us[nu].group = (char *)u->group;
			us[nu].delivered = u->delivered;
			us[nu].delivered_bytes = u->delivered_bytes;
			us[nu].dropped = dropped;
			us[nu].filtered = u->filtered;
			us[nu].published = u->published;
			us[nu].released = u->released;
			us[nu].lag_records = u->lag_records;
			us[nu].lag_ns = u->lag_ns;
			usp[nu] = &us[nu];
			nu++;
			o->n_subscriptions++;
		}
		ssp[nss] = o;
		nss++;
	}
	if (stream && stream[0] && nss == 0) {
		snprintf(msg, msg_len,
			 "GetStreamStatsRequest.stream: no stream '%s' on the "
			 "broker (ListStreams lists those there are)",
			 stream);
		err = -ENOENT;
		goto out;
	}
	nrs = session_list(srv, sl, srv->cfg->max_subscriptions);
	for (uint32_t i = 0; i < nrs; i++) {
		expbus__v1__remote_subscription_stats__init(&rs[i]);
		rs[i].subscription_id = sl[i].id;
		rs[i].stream = sl[i].stream;
		rs[i].connected = sl[i].connected;
		rs[i].policy = sl[i].policy == EXPBUS_LOSSY
				   ? EXPBUS__V1__POLICY__POLICY_LOSSY
				   : EXPBUS__V1__POLICY__POLICY_LOSSLESS;
		rs[i].compression =
		    sl[i].compression == COMP_LZ4
			? EXPBUS__V1__COMPRESSION__COMPRESSION_LZ4
			: EXPBUS__V1__COMPRESSION__COMPRESSION_NONE;
		rs[i].sent_batches = sl[i].sent_batches;
		rs[i].sent_records = sl[i].sent_records;
		rs[i].sent_bytes = sl[i].sent_bytes;
		rs[i].retained_batches = sl[i].retained;
		rs[i].dropped_total = sl[i].dropped;
		rs[i].lost_total = sl[i].lost;
		rsp[i] = &rs[i];
	}
	r.broker_pid = v.broker_pid;
	r.n_streams = nss;
	r.streams = ssp;
	r.n_remote_subscriptions = nrs;
	r.remote_subscriptions = rsp;
	err = pack(&r.base, out, len);
out:
	free(ss);
	free(ssp);
	free(ps);
	free(psp);
	free(us);
	free(usp);
	free(sl);
	free(rs);
	free(rsp);
	stats_view_free(&v);
	return err;
}
