/* The baseline worker: consumes one service queue and, for each invocation, publishes its
 * retry, callback or reply and acknowledges it once the broker confirmed that message. */
#include "baseline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_HEADERS 32
#define DECLARED_CACHE 16

typedef struct {
    worker_options *options;
    bench_connection connection;
    /* Per delivery tag, the publish sequence number its acknowledgement waits for; 0 for none. */
    uint64_t sequence_of_tag[TRACK_WINDOW];
    uint64_t acked_through;
    uint64_t highest_tag;
    int64_t declared_delays[DECLARED_CACHE];
    int declared_delay_count;
    char declared_callbacks[DECLARED_CACHE][256];
    int declared_callback_count;
} worker_state;

/* The invocation headers the worker reads. */
typedef struct {
    char cid[256];
    char mode[16];
    char target[256];
    char callback[256];
    char source[256];
    char orig_cid[256];
    char request_timestamp[64];
    int64_t attempt;
    int64_t repeats;
    int64_t interval_ms;
} invocation;

static void read_invocation(const amqp_basic_properties_t *properties, invocation *call) {
    call->cid[0] = '\0';
    if (properties->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
        copy_bytes(call->cid, sizeof call->cid, properties->correlation_id);
    }
    header_text(properties, "amqpretry-mode", call->mode, sizeof call->mode);
    header_text(properties, "amqpretry-target", call->target, sizeof call->target);
    header_text(properties, "amqpretry-callback", call->callback, sizeof call->callback);
    header_text(properties, "amqpretry-source", call->source, sizeof call->source);
    header_text(properties, "amqpretry-orig-cid", call->orig_cid, sizeof call->orig_cid);
    header_text(properties, "amqpretry-req-ts", call->request_timestamp, sizeof call->request_timestamp);
    call->attempt = header_integer(properties, "amqpretry-attempt", 1);
    call->repeats = header_integer(properties, "amqpretry-repeats", 0);
    call->interval_ms = header_integer(properties, "amqpretry-interval-ms", 0);
}

static void ensure_delay_declared(worker_state *worker, int64_t milliseconds) {
    for (int index = 0; index < worker->declared_delay_count; index++) {
        if (worker->declared_delays[index] == milliseconds) {
            return;
        }
    }
    bench_declare_delay(&worker->connection, milliseconds);
    if (worker->declared_delay_count < DECLARED_CACHE) {
        worker->declared_delays[worker->declared_delay_count++] = milliseconds;
    }
}

static void ensure_callback_declared(worker_state *worker, const char *service) {
    for (int index = 0; index < worker->declared_callback_count; index++) {
        if (strcmp(worker->declared_callbacks[index], service) == 0) {
            return;
        }
    }
    bench_declare_service_queue(&worker->connection, service);
    if (worker->declared_callback_count < DECLARED_CACHE) {
        snprintf(worker->declared_callbacks[worker->declared_callback_count++], 256, "%s", service);
    }
}

static bool is_dead_lettering_header(amqp_bytes_t key) {
    static const char *prefixes[] = {"x-death", "x-first-death-", "x-last-death-", "amqpretry-attempt",
                                     "amqpretry-last-error"};
    for (size_t index = 0; index < sizeof prefixes / sizeof prefixes[0]; index++) {
        size_t length = strlen(prefixes[index]);
        if (key.len >= length && memcmp(key.bytes, prefixes[index], length) == 0) {
            return true;
        }
    }
    return false;
}

/* Publishes the next attempt to the delay exchange of its interval, with the broker's
 * dead-lettering headers removed and the attempt and last error replaced. */
static uint64_t publish_retry(worker_state *worker, const amqp_message_t *message, const invocation *call) {
    ensure_delay_declared(worker, call->interval_ms);
    amqp_table_entry_t entries[MAX_HEADERS];
    int count = 0;
    const amqp_table_t *original = &message->properties.headers;
    for (int index = 0; index < original->num_entries && count < MAX_HEADERS - 2; index++) {
        if (!is_dead_lettering_header(original->entries[index].key)) {
            entries[count++] = original->entries[index];
        }
    }
    entries[count++] = (amqp_table_entry_t){
        .key = bytes_of("amqpretry-attempt"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = call->attempt + 1}};
    entries[count++] = (amqp_table_entry_t){
        .key = bytes_of("amqpretry-last-error"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of("the benchmark service failed on purpose")}};

    char message_id[UUID_LENGTH + 1];
    make_uuid(message_id);
    amqp_basic_properties_t properties = message->properties;
    properties._flags |= AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_HEADERS_FLAG |
                         AMQP_BASIC_DELIVERY_MODE_FLAG;
    properties.message_id = bytes_of(message_id);
    properties.timestamp = (uint64_t)time(NULL);
    properties.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    properties.headers = (amqp_table_t){.num_entries = count, .entries = entries};

    char exchange[64];
    char routing_key[300];
    delay_exchange_name(exchange, sizeof exchange, call->interval_ms);
    service_queue_name(routing_key, sizeof routing_key, call->target);
    return bench_publish(&worker->connection, exchange, routing_key, true, &properties, message->body);
}

/* Publishes the outcome of a successful call to the callback service's queue, with the
 * properties, headers and JSON body of docs/wire-format.md. */
static uint64_t publish_callback(worker_state *worker, const invocation *call) {
    ensure_callback_declared(worker, call->callback);
    char response_timestamp[TIMESTAMP_LENGTH + 1];
    make_wire_timestamp(response_timestamp);
    char body[2048];
    int length = snprintf(
        body, sizeof body,
        "{\"ok\":true,\"source\":\"%s\",\"target\":\"%s\",\"retry_repeats\":%lld,\"retry_seconds\":%.3f,"
        "\"call_cid\":\"%s\",\"orig_cid\":\"%s\",\"req_ts_utc\":\"%s\",\"resp_ts_utc\":\"%s\",\"context\":null,"
        "\"response\":\"\",\"response_encoding\":\"utf-8\",\"response_content_type\":\"application/json\","
        "\"attempts\":%lld,\"error\":null}",
        call->source, call->target, (long long)call->repeats, (double)call->interval_ms / 1000.0, call->cid,
        call->orig_cid, call->request_timestamp, response_timestamp, (long long)call->attempt);

    amqp_table_entry_t entries[] = {
        {.key = bytes_of("amqpretry-version"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 1}},
        {.key = bytes_of("amqpretry-mode"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of("callback")}},
        {.key = bytes_of("amqpretry-target"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of(call->callback)}},
        {.key = bytes_of("amqpretry-attempt"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 1}},
        {.key = bytes_of("amqpretry-source"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of(call->target)}},
        {.key = bytes_of("amqpretry-repeats"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = call->repeats}},
        {.key = bytes_of("amqpretry-interval-ms"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = call->interval_ms}},
        {.key = bytes_of("amqpretry-orig-cid"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of(call->orig_cid)}},
        {.key = bytes_of("amqpretry-req-ts"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of(call->request_timestamp)}},
    };
    char message_id[UUID_LENGTH + 1];
    make_uuid(message_id);
    amqp_basic_properties_t properties = {
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
                  AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_HEADERS_FLAG,
        .content_type = bytes_of("application/json"),
        .delivery_mode = AMQP_DELIVERY_PERSISTENT,
        .correlation_id = bytes_of(call->cid),
        .message_id = bytes_of(message_id),
        .timestamp = (uint64_t)time(NULL),
        .headers = {.num_entries = sizeof entries / sizeof entries[0], .entries = entries},
    };
    char routing_key[300];
    service_queue_name(routing_key, sizeof routing_key, call->callback);
    amqp_bytes_t payload = {.len = (size_t)length, .bytes = body};
    return bench_publish(&worker->connection, "", routing_key, true, &properties, payload);
}

/* Sends the reply of a blocking call to its reply_to: the request body back, not mandatory and
 * transient, as a worker replies. */
static uint64_t publish_reply(worker_state *worker, const amqp_message_t *message, const invocation *call) {
    char reply_to[256];
    copy_bytes(reply_to, sizeof reply_to, message->properties.reply_to);
    amqp_table_entry_t entries[] = {
        {.key = bytes_of("amqpretry-version"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 1}},
        {.key = bytes_of("amqpretry-attempt"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = call->attempt}},
        {.key = bytes_of("amqpretry-status"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of("ok")}},
    };
    char message_id[UUID_LENGTH + 1];
    make_uuid(message_id);
    amqp_basic_properties_t properties = {
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
                  AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_HEADERS_FLAG,
        .content_type = bytes_of("application/json"),
        .delivery_mode = AMQP_DELIVERY_NONPERSISTENT,
        .correlation_id = bytes_of(call->cid),
        .message_id = bytes_of(message_id),
        .headers = {.num_entries = sizeof entries / sizeof entries[0], .entries = entries},
    };
    return bench_publish(&worker->connection, "", reply_to, false, &properties, message->body);
}

static void record_call(worker_state *worker, const amqp_message_t *message, int64_t attempt) {
    worker_options *options = worker->options;
    uint64_t now = monotonic_ns();
    if (atomic_fetch_add(&options->handled, 1) == 0) {
        atomic_store(&options->first_handled_ns, now);
    }
    if (options->stamps == NULL || attempt < 1 || attempt > 3) {
        return;
    }
    long index = payload_index(message->body);
    if (index >= 0 && index < options->stamp_count) {
        atomic_store(&options->stamps[index * 3 + attempt - 1], now);
    }
}

/* Calls the benchmark service on one delivery and returns the publish sequence number its
 * acknowledgement waits for, or 0 when it can be acknowledged at once. */
static uint64_t handle_delivery(worker_state *worker, const amqp_message_t *message) {
    invocation call;
    read_invocation(&message->properties, &call);
    record_call(worker, message, call.attempt);

    if (strcmp(call.mode, "sync") == 0 && (message->properties._flags & AMQP_BASIC_REPLY_TO_FLAG)) {
        return publish_reply(worker, message, &call);
    }
    bool fails = call.attempt <= worker->options->failing_attempts;
    if (fails && call.attempt <= call.repeats) {
        return publish_retry(worker, message, &call);
    }
    if (fails) {
        die("invocation %s failed on its last attempt, which no workload expects", call.cid);
    }
    if (call.callback[0] != '\0') {
        return publish_callback(worker, &call);
    }
    return 0;
}

/* Acknowledges, with one multiple basic.ack, every delivery up to the first one whose
 * replacement the broker has not confirmed yet. */
static void acknowledge_finished(worker_state *worker) {
    uint64_t through = worker->acked_through;
    while (through < worker->highest_tag) {
        uint64_t sequence = worker->sequence_of_tag[(through + 1) % TRACK_WINDOW];
        if (sequence != 0 && !bench_is_confirmed(&worker->connection, sequence)) {
            break;
        }
        through++;
    }
    if (through > worker->acked_through) {
        bench_ack(&worker->connection, through, true);
        worker->acked_through = through;
    }
}

static void process_event(worker_state *worker, bench_event *event) {
    if (event->delivery_tag != worker->highest_tag + 1) {
        die("delivery tag %llu arrived after %llu", (unsigned long long)event->delivery_tag,
            (unsigned long long)worker->highest_tag);
    }
    worker->highest_tag = event->delivery_tag;
    worker->sequence_of_tag[event->delivery_tag % TRACK_WINDOW] = handle_delivery(worker, &event->message);
}

void *run_worker(void *argument) {
    worker_state *worker = calloc(1, sizeof *worker);
    if (worker == NULL) {
        die("out of memory");
    }
    worker->options = argument;
    worker_options *options = worker->options;
    char queue[300];
    service_queue_name(queue, sizeof queue, options->service);

    bench_connect(&worker->connection);
    bench_declare_service_queue(&worker->connection, options->service);
    bench_set_prefetch(&worker->connection, options->prefetch);
    bench_consume(&worker->connection, queue, false);
    atomic_store(&options->ready, true);

    bench_event event;
    while (!atomic_load(options->stop)) {
        check_deadline(options->deadline, "the worker");
        if (bench_read_event(&worker->connection, &event, 20) == EVENT_DELIVERY) {
            process_event(worker, &event);
        }
        bench_release_event(&event);
        if (!amqp_frames_enqueued(worker->connection.state) && !amqp_data_in_buffer(worker->connection.state)) {
            acknowledge_finished(worker);
        }
    }
    bench_close(&worker->connection);
    free(worker);
    return NULL;
}
