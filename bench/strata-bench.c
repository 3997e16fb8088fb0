/*
 * strata-bench: a small load generator for Strata (or any Kafka broker) on librdkafka.
 *
 * One binary, four modes, each printing one JSON object on stdout:
 *
 *   strata-bench create  -b HOST:PORT -t TOPIC -p PARTITIONS
 *   strata-bench delete  -b HOST:PORT -t TOPIC
 *   strata-bench produce -b HOST:PORT -t TOPIC -d SECONDS [-r MSGS_PER_S] [-s BYTES]
 *   strata-bench e2e     -b HOST:PORT -t TOPIC -d SECONDS  -r MSGS_PER_S  [-s BYTES]
 *   strata-bench consume -b HOST:PORT -t TOPIC [-T TIMEOUT_S]
 *
 * produce: acks=all, fixed-size records (value only, no key: librdkafka spreads them over the
 *   partitions). -r 0 (the default) is "as fast as the broker acknowledges": the client keeps its
 *   queue full. -r N paces N records/s. Every record carries its send time (CLOCK_MONOTONIC, ns)
 *   in its first 8 bytes; latency is send() call -> delivery report (the ack), in microseconds,
 *   for records sent after the warm-up (-w, default 2 s).
 * e2e: the same paced producer plus a consumer (simple consumer, no group) that starts at the
 *   partitions' high watermarks; latency is send() call -> record handed to the application.
 *   Both run in this process, so both clocks are the same CLOCK_MONOTONIC.
 * consume: reads the whole topic from its low watermark to the high watermark taken at start,
 *   and reports the rate (timed from assign() to the last record).
 *
 * Extra librdkafka properties: -X key=value (repeatable), applied last.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define MAX_X 32
#define MAX_PARTS 1024
#define TIMELINE_MAX 600

struct opts {
    const char *mode;
    const char *brokers;
    const char *topic;
    int partitions;
    double duration_s;
    double warmup_s;
    double rate;
    int size;
    int linger_ms;
    double timeout_s;
    const char *x[MAX_X];
    int nx;
};

static volatile sig_atomic_t interrupted = 0;
static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "strata-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* ---------------------------------------------------------------- latency samples (µs) */

struct samples {
    uint32_t *v;
    size_t n, cap;
    int sorted;
};

static void samples_add(struct samples *s, uint64_t us) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1 << 16;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) die("out of memory");
    }
    s->v[s->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    s->sorted = 0;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The p-quantile (0..1) in milliseconds, nearest-rank; -1 when there are no samples. */
static double quantile_ms(struct samples *s, double p) {
    if (s->n == 0) return -1;
    if (!s->sorted) {
        qsort(s->v, s->n, sizeof *s->v, cmp_u32);
        s->sorted = 1;
    }
    size_t rank = (size_t)ceil(p * (double)s->n);
    if (rank < 1) rank = 1;
    if (rank > s->n) rank = s->n;
    return s->v[rank - 1] / 1000.0;
}

static double mean_ms(const struct samples *s) {
    if (s->n == 0) return -1;
    double sum = 0;
    for (size_t i = 0; i < s->n; i++) sum += s->v[i];
    return sum / (double)s->n / 1000.0;
}

static void print_latency(const char *name, struct samples *s) {
    printf("\"%s\":{\"samples\":%zu,\"mean_ms\":%.3f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
           "\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f}",
           name, s->n, mean_ms(s), quantile_ms(s, 0.50), quantile_ms(s, 0.90),
           quantile_ms(s, 0.99), quantile_ms(s, 0.999), quantile_ms(s, 1.0));
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* ---------------------------------------------------------------- configuration */

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
        die("config %s=%s: %s", k, v, err);
}

static void apply_extra(rd_kafka_conf_t *conf, const struct opts *o) {
    for (int i = 0; i < o->nx; i++) {
        char *kv = strdup(o->x[i]);
        char *eq = strchr(kv, '=');
        if (!eq) die("-X wants key=value, not %s", o->x[i]);
        *eq = 0;
        set(conf, kv, eq + 1);
        free(kv);
    }
}

static rd_kafka_conf_t *base_conf(const struct opts *o) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", o->brokers);
    set(conf, "client.id", "strata-bench");
    /* The Java client sets TCP_NODELAY; librdkafka 2.0 leaves Nagle on unless told. */
    set(conf, "socket.nagle.disable", "true");
    return conf;
}

static rd_kafka_conf_t *producer_conf(const struct opts *o) {
    rd_kafka_conf_t *conf = base_conf(o);
    char buf[32];
    set(conf, "acks", "all");
    set(conf, "compression.codec", "none");
    set(conf, "enable.idempotence", "false");
    snprintf(buf, sizeof buf, "%d", o->linger_ms);
    set(conf, "linger.ms", buf);
    set(conf, "message.timeout.ms", "30000"); /* bounds every phase: duration + 30 s */
    return conf;
}

/* Partition count of the topic from metadata, waiting for it to appear. */
static int topic_partitions(rd_kafka_t *rk, const char *topic, double wait_s) {
    uint64_t deadline = now_ns() + (uint64_t)(wait_s * 1e9);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int n = -1;
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
        if (!err && md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0) {
            n = md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
            break;
        }
        if (md) rd_kafka_metadata_destroy(md);
        if (now_ns() > deadline) break;
        usleep(200 * 1000);
    }
    rd_kafka_topic_destroy(rkt);
    return n;
}

/* ---------------------------------------------------------------- create */

static int do_create(const struct opts *o) {
    char err[512];
    rd_kafka_conf_t *conf = base_conf(o);
    apply_extra(conf, o);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("rd_kafka_new: %s", err);
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(o->topic, o->partitions, 1, err, sizeof err);
    if (!nt) die("NewTopic: %s", err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, 10000, err, sizeof err);
    rd_kafka_AdminOptions_set_request_timeout(ao, 15000, err, sizeof err);
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
    if (!ev) die("CreateTopics: no answer in 20 s");
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    if (!res) die("CreateTopics: %s", rd_kafka_event_error_string(ev));
    if (rd_kafka_event_error(ev)) die("CreateTopics: %s", rd_kafka_event_error_string(ev));
    size_t cnt = 0;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
    if (cnt != 1) die("CreateTopics: %zu results", cnt);
    rd_kafka_resp_err_t terr = rd_kafka_topic_result_error(tr[0]);
    if (terr && terr != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        die("CreateTopics %s: %s (%s)", o->topic, rd_kafka_err2name(terr),
            rd_kafka_topic_result_error_string(tr[0]) ? rd_kafka_topic_result_error_string(tr[0]) : "");
    rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    int n = topic_partitions(rk, o->topic, 10);
    if (n != o->partitions) die("topic %s has %d partitions in metadata, wanted %d", o->topic, n, o->partitions);
    printf("{\"mode\":\"create\",\"topic\":\"%s\",\"partitions\":%d,\"result\":\"%s\"}\n", o->topic, n,
           terr ? rd_kafka_err2name(terr) : "created");
    rd_kafka_destroy(rk);
    return 0;
}

static int do_delete(const struct opts *o) {
    char err[512];
    rd_kafka_conf_t *conf = base_conf(o);
    apply_extra(conf, o);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("rd_kafka_new: %s", err);
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(o->topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
    if (!ev) die("DeleteTopics: no answer in 20 s");
    const rd_kafka_DeleteTopics_result_t *res = rd_kafka_event_DeleteTopics_result(ev);
    if (!res || rd_kafka_event_error(ev)) die("DeleteTopics: %s", rd_kafka_event_error_string(ev));
    size_t cnt = 0;
    const rd_kafka_topic_result_t **tr = rd_kafka_DeleteTopics_result_topics(res, &cnt);
    rd_kafka_resp_err_t terr = cnt ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR_NO_ERROR;
    printf("{\"mode\":\"delete\",\"topic\":\"%s\",\"result\":\"%s\"}\n", o->topic,
           terr ? rd_kafka_err2name(terr) : "deleted");
    rd_kafka_event_destroy(ev);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return terr ? 1 : 0;
}

/* ---------------------------------------------------------------- produce */

struct pstats {
    uint64_t acked, acked_bytes, errors;
    rd_kafka_resp_err_t first_err;
    uint64_t window_from_ns, window_to_ns; /* latency samples for records sent in [from, to) */
    uint64_t last_ack_ns;
    uint64_t t0;
    struct samples lat;
    /* per second of send time since t0: records acked and their worst latency (µs) */
    uint64_t tl_count[TIMELINE_MAX];
    uint32_t tl_max_us[TIMELINE_MAX];
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    struct pstats *st = opaque;
    uint64_t now = now_ns();
    if (m->err) {
        if (!st->errors) st->first_err = m->err;
        st->errors++;
        return;
    }
    st->acked++;
    st->acked_bytes += m->len;
    st->last_ack_ns = now;
    uint64_t sent;
    memcpy(&sent, m->payload, sizeof sent);
    if (sent >= st->window_from_ns && sent < st->window_to_ns) samples_add(&st->lat, (now - sent) / 1000);
    if (sent >= st->t0) {
        uint64_t sec = (sent - st->t0) / 1000000000ull;
        uint64_t us = (now - sent) / 1000;
        if (sec < TIMELINE_MAX) {
            st->tl_count[sec]++;
            if (us > st->tl_max_us[sec]) st->tl_max_us[sec] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        }
    }
}

/* e2e consumer side */
struct cstats {
    const struct opts *o;
    int nparts;
    int64_t start[MAX_PARTS];
    atomic_int ready;
    atomic_int stop;
    atomic_uint_fast64_t consumed;
    uint64_t window_from_ns, window_to_ns;
    uint64_t errors;
    char first_err[256];
    struct samples lat;
};

/* Consumers use librdkafka's simple (legacy) consumer: explicit partitions and offsets, no group
 * coordinator, as kcat does without -G. */
static rd_kafka_t *simple_consumer(const struct opts *o) {
    char err[512];
    rd_kafka_conf_t *conf = base_conf(o);
    set(conf, "enable.partition.eof", "false");
    apply_extra(conf, o);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) die("rd_kafka_new(consumer): %s", err);
    return rk;
}

static void *e2e_consumer(void *arg) {
    struct cstats *c = arg;
    const struct opts *o = c->o;
    rd_kafka_t *rk = simple_consumer(o);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    for (int p = 0; p < c->nparts; p++)
        if (rd_kafka_consume_start_queue(rkt, p, c->start[p], q) == -1)
            die("consume_start %s[%d]: %s", o->topic, p, rd_kafka_err2str(rd_kafka_last_error()));
    atomic_store(&c->ready, 1);
    rd_kafka_message_t *batch[256];
    while (!atomic_load(&c->stop)) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 100, batch, 256);
        uint64_t now = now_ns();
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = batch[i];
            if (m->err) {
                if (!c->errors) snprintf(c->first_err, sizeof c->first_err, "%s", rd_kafka_message_errstr(m));
                c->errors++;
            } else if (m->len >= 8) {
                uint64_t sent;
                memcpy(&sent, m->payload, sizeof sent);
                if (sent >= c->window_from_ns && sent < c->window_to_ns) samples_add(&c->lat, (now - sent) / 1000);
                atomic_fetch_add(&c->consumed, 1);
            }
            rd_kafka_message_destroy(m);
        }
    }
    for (int p = 0; p < c->nparts; p++) rd_kafka_consume_stop(rkt, p);
    rd_kafka_queue_destroy(q);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return NULL;
}

static int do_produce(const struct opts *o, int e2e) {
    char err[512];
    struct pstats st = {0};
    rd_kafka_conf_t *conf = producer_conf(o);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, &st);
    apply_extra(conf, o);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("rd_kafka_new: %s", err);
    int nparts = topic_partitions(rk, o->topic, 10);
    if (nparts < 1 || nparts > MAX_PARTS) die("topic %s: no usable metadata (%d partitions)", o->topic, nparts);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);

    struct cstats *c = NULL;
    pthread_t consumer;
    if (e2e) {
        c = calloc(1, sizeof *c);
        c->o = o;
        c->nparts = nparts;
        for (int p = 0; p < nparts; p++) {
            int64_t lo, hi;
            rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, o->topic, p, &lo, &hi, 10000);
            if (e) die("watermarks %s[%d]: %s", o->topic, p, rd_kafka_err2str(e));
            c->start[p] = hi;
        }
        c->window_to_ns = UINT64_MAX;
        c->window_from_ns = UINT64_MAX; /* set below, before the first send */
        pthread_create(&consumer, NULL, e2e_consumer, c);
        while (!atomic_load(&c->ready)) usleep(1000);
        usleep(500 * 1000); /* let the consumer's first fetches go out */
    }

    char *payload = malloc(o->size);
    for (int i = 0; i < o->size; i++) payload[i] = (char)(rand() & 0xff);

    double cpu0 = cpu_seconds();
    uint64_t t0 = now_ns();
    uint64_t warm = t0 + (uint64_t)(o->warmup_s * 1e9);
    uint64_t end = t0 + (uint64_t)(o->duration_s * 1e9);
    st.t0 = t0;
    st.window_from_ns = warm;
    st.window_to_ns = end;
    if (c) {
        c->window_from_ns = warm;
        c->window_to_ns = end;
    }
    uint64_t sent = 0, queue_full = 0, produce_errors = 0;
    uint64_t acked_at_warm = 0, acked_at_end = 0, bytes_at_warm = 0, bytes_at_end = 0;
    uint64_t t_warm = 0, t_end = 0;
    double max_lag_ms = 0; /* paced mode: how far the sender fell behind its schedule */
    int warm_marked = 0;

    for (;;) {
        uint64_t now = now_ns();
        if (!warm_marked && now >= warm) {
            rd_kafka_poll(rk, 0);
            acked_at_warm = st.acked;
            bytes_at_warm = st.acked_bytes;
            t_warm = now_ns();
            warm_marked = 1;
        }
        if (now >= end || interrupted) break;
        uint64_t due;
        if (o->rate > 0) {
            due = (uint64_t)((double)(now - t0) / 1e9 * o->rate) + 1;
            if (due > sent + 1) {
                double lag = ((double)(due - sent - 1) / o->rate) * 1e3;
                if (lag > max_lag_ms) max_lag_ms = lag;
            }
        } else {
            due = sent + 10000; /* as many as the queue takes */
        }
        while (sent < due) {
            uint64_t ts = now_ns();
            memcpy(payload, &ts, sizeof ts);
            memcpy(payload + 8, &sent, sizeof sent);
            if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, payload, o->size,
                                 NULL, 0, NULL) == -1) {
                rd_kafka_resp_err_t e = rd_kafka_last_error();
                if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                    queue_full++;
                    break;
                }
                produce_errors++;
                if (produce_errors == 1) fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e));
                break;
            }
            sent++;
            if ((sent & 1023) == 0) rd_kafka_poll(rk, 0);
        }
        if (o->rate > 0 || sent < due) rd_kafka_poll(rk, 1);
    }
    rd_kafka_poll(rk, 0);
    acked_at_end = st.acked;
    bytes_at_end = st.acked_bytes;
    t_end = now_ns();
    uint64_t flush_start = t_end;
    rd_kafka_resp_err_t ferr = rd_kafka_flush(rk, 35000);
    uint64_t flushed = now_ns();
    int outstanding = rd_kafka_outq_len(rk);
    double cpu1 = cpu_seconds();

    uint64_t consumed = 0;
    double consumer_drain_ms = 0;
    if (c) {
        uint64_t dl = now_ns() + 10ull * 1000000000ull;
        while (atomic_load(&c->consumed) < st.acked && now_ns() < dl) usleep(1000);
        consumer_drain_ms = (now_ns() - flushed) / 1e6;
        atomic_store(&c->stop, 1);
        pthread_join(consumer, NULL);
        consumed = atomic_load(&c->consumed);
    }

    double win_s = (t_end - t_warm) / 1e9;
    double total_s = (st.last_ack_ns > t0 ? st.last_ack_ns - t0 : 1) / 1e9;
    printf("{\"mode\":\"%s\",\"topic\":\"%s\",\"partitions\":%d,\"record_bytes\":%d,"
           "\"target_rate\":%.0f,\"duration_s\":%.1f,\"warmup_s\":%.1f,\"linger_ms\":%d,",
           e2e ? "e2e" : "produce", o->topic, nparts, o->size, o->rate, o->duration_s, o->warmup_s,
           o->linger_ms);
    printf("\"sent\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"first_error\":\"%s\","
           "\"produce_call_errors\":%" PRIu64 ",\"queue_full\":%" PRIu64 ",\"outstanding_after_flush\":%d,"
           "\"flush_error\":\"%s\",\"flush_ms\":%.1f,",
           sent, st.acked, st.errors, st.errors ? rd_kafka_err2name(st.first_err) : "", produce_errors,
           queue_full, outstanding, ferr ? rd_kafka_err2name(ferr) : "", (flushed - flush_start) / 1e6);
    printf("\"steady_window_s\":%.3f,\"steady_msgs_per_s\":%.1f,\"steady_mb_per_s\":%.3f,"
           "\"overall_msgs_per_s\":%.1f,\"overall_mb_per_s\":%.3f,\"max_schedule_lag_ms\":%.3f,"
           "\"client_cpu_s\":%.3f,\"client_cpu_pct\":%.1f,",
           win_s, (acked_at_end - acked_at_warm) / win_s, (bytes_at_end - bytes_at_warm) / win_s / 1e6,
           st.acked / total_s, st.acked_bytes / total_s / 1e6, max_lag_ms, cpu1 - cpu0,
           100.0 * (cpu1 - cpu0) / ((flushed - t0) / 1e9));
    print_latency("produce_latency", &st.lat);
    /* per second of send time: acked records and the worst produce latency (ms) */
    int secs_run = (int)ceil(o->duration_s);
    if (secs_run > TIMELINE_MAX) secs_run = TIMELINE_MAX;
    printf(",\"timeline_acked\":[");
    for (int i = 0; i < secs_run; i++) printf("%s%" PRIu64, i ? "," : "", st.tl_count[i]);
    printf("],\"timeline_max_latency_ms\":[");
    for (int i = 0; i < secs_run; i++) printf("%s%.1f", i ? "," : "", st.tl_max_us[i] / 1000.0);
    printf("]");
    if (c) {
        printf(",\"consumed\":%" PRIu64 ",\"consumer_errors\":%" PRIu64 ",\"consumer_first_error\":\"%s\","
               "\"consumer_drain_ms\":%.1f,",
               consumed, c->errors, c->first_err, consumer_drain_ms);
        print_latency("e2e_latency", &c->lat);
    }
    printf("}\n");
    fflush(stdout);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    free(payload);
    int bad = st.errors || outstanding || produce_errors || (c && consumed < st.acked);
    return bad ? 1 : 0;
}

/* ---------------------------------------------------------------- consume (catch-up) */

static int do_consume(const struct opts *o) {
    rd_kafka_t *rk = simple_consumer(o);
    int nparts = topic_partitions(rk, o->topic, 10);
    if (nparts < 1 || nparts > MAX_PARTS) die("topic %s: no usable metadata (%d partitions)", o->topic, nparts);
    int64_t lo[MAX_PARTS], hi[MAX_PARTS], next[MAX_PARTS];
    uint64_t expected = 0;
    for (int p = 0; p < nparts; p++) {
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, o->topic, p, &lo[p], &hi[p], 10000);
        if (e) die("watermarks %s[%d]: %s", o->topic, p, rd_kafka_err2str(e));
        next[p] = lo[p];
        expected += (uint64_t)(hi[p] - lo[p]);
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);

    double cpu0 = cpu_seconds();
    uint64_t t0 = now_ns();
    for (int p = 0; p < nparts; p++)
        if (rd_kafka_consume_start_queue(rkt, p, lo[p], q) == -1)
            die("consume_start %s[%d]: %s", o->topic, p, rd_kafka_err2str(rd_kafka_last_error()));

    uint64_t got = 0, bytes = 0, errors = 0, gaps = 0, first_ns = 0, last_ns = t0;
    char first_err[256] = "";
    int done_parts = 0;
    for (int p = 0; p < nparts; p++)
        if (next[p] >= hi[p]) done_parts++;
    uint64_t deadline = t0 + (uint64_t)(o->timeout_s * 1e9);
    rd_kafka_message_t *batch[1024];
    while (done_parts < nparts && !interrupted && now_ns() < deadline) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 100, batch, 1024);
        if (n < 0) die("consume: %s", rd_kafka_err2str(rd_kafka_last_error()));
        uint64_t now = now_ns();
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = batch[i];
            if (m->err) {
                if (!errors) snprintf(first_err, sizeof first_err, "%s", rd_kafka_message_errstr(m));
                errors++;
            } else {
                int p = m->partition;
                if (p >= 0 && p < nparts && m->offset >= next[p]) {
                    if (m->offset != next[p]) gaps++;
                    int was_done = next[p] >= hi[p];
                    next[p] = m->offset + 1;
                    if (!was_done && next[p] >= hi[p]) done_parts++;
                    got++;
                    bytes += m->len;
                    if (!first_ns) first_ns = now;
                    last_ns = now;
                }
            }
            rd_kafka_message_destroy(m);
        }
    }
    double cpu1 = cpu_seconds();
    double secs = (last_ns - t0) / 1e9;
    printf("{\"mode\":\"consume\",\"topic\":\"%s\",\"partitions\":%d,\"expected\":%" PRIu64 ",\"consumed\":%" PRIu64
           ",\"bytes\":%" PRIu64 ",\"complete\":%s,\"errors\":%" PRIu64 ",\"first_error\":\"%s\",\"offset_gaps\":%" PRIu64
           ",\"seconds\":%.3f,\"first_record_ms\":%.1f,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,"
           "\"client_cpu_s\":%.3f,\"client_cpu_pct\":%.1f}\n",
           o->topic, nparts, expected, got, bytes, done_parts == nparts ? "true" : "false", errors, first_err,
           gaps, secs, first_ns ? (first_ns - t0) / 1e6 : -1.0, got / secs, bytes / secs / 1e6, cpu1 - cpu0,
           100.0 * (cpu1 - cpu0) / ((now_ns() - t0) / 1e9));
    fflush(stdout);
    for (int p = 0; p < nparts; p++) rd_kafka_consume_stop(rkt, p);
    rd_kafka_queue_destroy(q);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return done_parts == nparts && !errors ? 0 : 1;
}

/* ---------------------------------------------------------------- main */

static void usage(void) {
    fprintf(stderr,
            "usage: strata-bench create|delete|produce|e2e|consume -b BROKERS -t TOPIC\n"
            "  -p N      partitions (create)            -d S   duration (produce, e2e)\n"
            "  -r N      records/s, 0 = max (produce)   -w S   warm-up excluded from stats (2)\n"
            "  -s BYTES  record value size (1024)       -l MS  linger.ms (5)\n"
            "  -T S      give up after S seconds (consume, 120)\n"
            "  -X k=v    any librdkafka property\n");
    exit(2);
}

int main(int argc, char **argv) {
    struct opts o = {.partitions = 8, .duration_s = 20, .warmup_s = 2, .rate = 0, .size = 1024,
                     .linger_ms = 5, .timeout_s = 120};
    if (argc < 2) usage();
    o.mode = argv[1];
    optind = 2;
    int ch;
    while ((ch = getopt(argc, argv, "b:t:p:d:w:r:s:l:T:X:")) != -1) {
        switch (ch) {
        case 'b': o.brokers = optarg; break;
        case 't': o.topic = optarg; break;
        case 'p': o.partitions = atoi(optarg); break;
        case 'd': o.duration_s = atof(optarg); break;
        case 'w': o.warmup_s = atof(optarg); break;
        case 'r': o.rate = atof(optarg); break;
        case 's': o.size = atoi(optarg); break;
        case 'l': o.linger_ms = atoi(optarg); break;
        case 'T': o.timeout_s = atof(optarg); break;
        case 'X':
            if (o.nx == MAX_X) die("too many -X");
            o.x[o.nx++] = optarg;
            break;
        default: usage();
        }
    }
    if (!o.brokers || !o.topic) usage();
    if (o.size < 16) die("record size must be at least 16 bytes");
    if (o.warmup_s >= o.duration_s && strcmp(o.mode, "produce") == 0) die("warm-up must be shorter than the duration");
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    srand(42);
    if (!strcmp(o.mode, "create")) return do_create(&o);
    if (!strcmp(o.mode, "delete")) return do_delete(&o);
    if (!strcmp(o.mode, "produce")) return do_produce(&o, 0);
    if (!strcmp(o.mode, "e2e")) {
        if (o.rate <= 0) die("e2e needs -r");
        return do_produce(&o, 1);
    }
    if (!strcmp(o.mode, "consume")) return do_consume(&o);
    usage();
}
