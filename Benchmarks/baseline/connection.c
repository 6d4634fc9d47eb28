/* Connections, frames, publisher confirms and declarations of the baseline. */
#include "baseline.h"

#include <amqp_tcp_socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bench_settings settings;

_Noreturn void die(const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    fputs("amqp-retry-baseline: error: ", stderr);
    vfprintf(stderr, format, arguments);
    fputc('\n', stderr);
    va_end(arguments);
    exit(1);
}

uint64_t monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

uint64_t deadline_after_seconds(int seconds) {
    return monotonic_ns() + (uint64_t)seconds * 1000000000u;
}

void check_deadline(uint64_t deadline, const char *what) {
    if (monotonic_ns() > deadline) {
        die("%s did not finish within %d s", what, settings.max_seconds);
    }
}

static _Noreturn void die_reply(amqp_rpc_reply_t reply, const char *operation) {
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
        die("%s failed: %s", operation, amqp_error_string2(reply.library_error));
    }
    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION) {
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *close = reply.reply.decoded;
            die("%s failed: the broker closed the connection: %u %.*s", operation, close->reply_code,
                (int)close->reply_text.len, (const char *)close->reply_text.bytes);
        }
        if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *close = reply.reply.decoded;
            die("%s failed: the broker closed the channel: %u %.*s", operation, close->reply_code,
                (int)close->reply_text.len, (const char *)close->reply_text.bytes);
        }
    }
    die("%s failed: no reply from the broker", operation);
}

void bench_check_reply(bench_connection *connection, const char *operation) {
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(connection->state);
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
        die_reply(reply, operation);
    }
}

/* Parses AMQP_URL without its query, which librabbitmq's parser does not accept, and rejects
 * any broker that is not on the loopback interface. */
static void parse_url(char *url, struct amqp_connection_info *info) {
    char *query = strchr(url, '?');
    if (query != NULL) {
        *query = '\0';
    }
    amqp_default_connection_info(info);
    if (amqp_parse_url(url, info) != AMQP_STATUS_OK) {
        die("AMQP_URL is not a valid amqp:// URL");
    }
    if (info->ssl) {
        die("the baseline connects with plain TCP only; use an amqp:// URL");
    }
    if (strcmp(info->host, "127.0.0.1") != 0 && strcmp(info->host, "localhost") != 0 &&
        strcmp(info->host, "::1") != 0) {
        die("the benchmark runs only against a broker on the loopback interface, not on '%s'", info->host);
    }
}

void bench_connect(bench_connection *connection) {
    char url[sizeof settings.url];
    struct amqp_connection_info info;
    memcpy(url, settings.url, sizeof url);
    parse_url(url, &info);

    memset(connection, 0, sizeof *connection);
    connection->state = amqp_new_connection();
    amqp_socket_t *socket = amqp_tcp_socket_new(connection->state);
    if (connection->state == NULL || socket == NULL) {
        die("creating a librabbitmq connection failed");
    }
    struct timeval timeout = {.tv_sec = 30};
    int status = amqp_socket_open_noblock(socket, info.host, info.port, &timeout);
    if (status != AMQP_STATUS_OK) {
        die("connecting to %s:%d failed: %s", info.host, info.port, amqp_error_string2(status));
    }
    /* The frame size and heartbeat AMQPRetry requests by default. */
    amqp_rpc_reply_t reply =
        amqp_login(connection->state, info.vhost, 0, 131072, 60, AMQP_SASL_METHOD_PLAIN, info.user, info.password);
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
        die_reply(reply, "login");
    }
    amqp_channel_open(connection->state, BENCH_CHANNEL);
    bench_check_reply(connection, "channel.open");
    amqp_confirm_select(connection->state, BENCH_CHANNEL);
    bench_check_reply(connection, "confirm.select");
    connection->next_sequence = 1;
    connection->lowest_unconfirmed = 1;
}

void bench_close(bench_connection *connection) {
    amqp_channel_close(connection->state, BENCH_CHANNEL, AMQP_REPLY_SUCCESS);
    amqp_connection_close(connection->state, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(connection->state);
    connection->state = NULL;
}

void bench_set_prefetch(bench_connection *connection, uint16_t count) {
    amqp_basic_qos(connection->state, BENCH_CHANNEL, 0, count, 0);
    bench_check_reply(connection, "basic.qos");
}

void bench_consume(bench_connection *connection, const char *queue, bool no_ack) {
    amqp_basic_consume(connection->state, BENCH_CHANNEL, bytes_of(queue), amqp_empty_bytes, 0, no_ack ? 1 : 0, 0,
                       amqp_empty_table);
    bench_check_reply(connection, "basic.consume");
}

static void mark_confirmed(bench_connection *connection, uint64_t sequence, bool multiple) {
    if (sequence < connection->lowest_unconfirmed || sequence >= connection->next_sequence) {
        return;
    }
    uint64_t first = multiple ? connection->lowest_unconfirmed : sequence;
    for (uint64_t each = first; each <= sequence; each++) {
        connection->confirmed[each % TRACK_WINDOW] = true;
    }
    while (connection->lowest_unconfirmed < connection->next_sequence &&
           connection->confirmed[connection->lowest_unconfirmed % TRACK_WINDOW]) {
        connection->confirmed[connection->lowest_unconfirmed % TRACK_WINDOW] = false;
        connection->lowest_unconfirmed++;
    }
}

static bench_event_kind read_method(bench_connection *connection, amqp_frame_t *frame, bench_event *event) {
    amqp_method_t *method = &frame->payload.method;
    switch (method->id) {
    case AMQP_BASIC_DELIVER_METHOD: {
        amqp_basic_deliver_t *deliver = method->decoded;
        event->delivery_tag = deliver->delivery_tag;
        event->redelivered = deliver->redelivered != 0;
        amqp_rpc_reply_t reply = amqp_read_message(connection->state, frame->channel, &event->message, 0);
        if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
            die_reply(reply, "reading a delivery");
        }
        return EVENT_DELIVERY;
    }
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *ack = method->decoded;
        mark_confirmed(connection, ack->delivery_tag, ack->multiple != 0);
        return EVENT_CONFIRM;
    }
    case AMQP_BASIC_NACK_METHOD:
        die("the broker rejected a publish with basic.nack");
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_basic_return_t *returned = method->decoded;
        die("the broker returned a mandatory message sent to '%.*s': %.*s", (int)returned->routing_key.len,
            (const char *)returned->routing_key.bytes, (int)returned->reply_text.len,
            (const char *)returned->reply_text.bytes);
    }
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_rpc_reply_t reply = {.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION, .reply = *method};
        die_reply(reply, "reading frames");
    }
    default:
        return EVENT_NONE;
    }
}

bench_event_kind bench_read_event(bench_connection *connection, bench_event *event, int timeout_ms) {
    event->kind = EVENT_NONE;
    amqp_maybe_release_buffers(connection->state);
    /* At least one microsecond: librabbitmq checks the heartbeat deadline only on a real wait. */
    struct timeval timeout = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 + 1};
    amqp_frame_t frame;
    int status = amqp_simple_wait_frame_noblock(connection->state, &frame, &timeout);
    if (status == AMQP_STATUS_TIMEOUT) {
        return EVENT_NONE;
    }
    if (status != AMQP_STATUS_OK) {
        die("reading a frame failed: %s", amqp_error_string2(status));
    }
    if (frame.frame_type != AMQP_FRAME_METHOD) {
        return EVENT_NONE;
    }
    event->kind = read_method(connection, &frame, event);
    return event->kind;
}

void bench_release_event(bench_event *event) {
    if (event->kind == EVENT_DELIVERY) {
        amqp_destroy_message(&event->message);
    }
    event->kind = EVENT_NONE;
}

uint64_t bench_publish(bench_connection *connection, const char *exchange, const char *routing_key, bool mandatory,
                       amqp_basic_properties_t *properties, amqp_bytes_t body) {
    if (connection->next_sequence - connection->lowest_unconfirmed >= TRACK_WINDOW) {
        die("more than %d publishes wait for a confirm", TRACK_WINDOW);
    }
    int status = amqp_basic_publish(connection->state, BENCH_CHANNEL, bytes_of(exchange), bytes_of(routing_key),
                                    mandatory ? 1 : 0, 0, properties, body);
    if (status != AMQP_STATUS_OK) {
        die("basic.publish to '%s' failed: %s", routing_key, amqp_error_string2(status));
    }
    return connection->next_sequence++;
}

bool bench_is_confirmed(const bench_connection *connection, uint64_t sequence) {
    return sequence < connection->lowest_unconfirmed;
}

void bench_wait_for_confirms(bench_connection *connection, uint64_t deadline) {
    bench_event event;
    while (connection->lowest_unconfirmed < connection->next_sequence) {
        check_deadline(deadline, "waiting for publisher confirms");
        if (bench_read_event(connection, &event, 100) == EVENT_DELIVERY) {
            die("a delivery arrived on a connection that only publishes");
        }
    }
}

void bench_ack(bench_connection *connection, uint64_t delivery_tag, bool multiple) {
    int status = amqp_basic_ack(connection->state, BENCH_CHANNEL, delivery_tag, multiple ? 1 : 0);
    if (status != AMQP_STATUS_OK) {
        die("basic.ack failed: %s", amqp_error_string2(status));
    }
}

void bench_declare_service_queue(bench_connection *connection, const char *service) {
    char queue[256];
    service_queue_name(queue, sizeof queue, service);
    amqp_queue_declare(connection->state, BENCH_CHANNEL, bytes_of(queue), 0, 1, 0, 0, amqp_empty_table);
    bench_check_reply(connection, "queue.declare of a service queue");
}

/* The delay exchange and queue of docs/wire-format.md: a durable fanout exchange and a durable
 * queue with x-message-ttl and dead-lettering to the default exchange, bound with key "". */
void bench_declare_delay(bench_connection *connection, int64_t milliseconds) {
    char name[64];
    delay_exchange_name(name, sizeof name, milliseconds);
    amqp_exchange_declare(connection->state, BENCH_CHANNEL, bytes_of(name), bytes_of("fanout"), 0, 1, 0, 0,
                          amqp_empty_table);
    bench_check_reply(connection, "exchange.declare of a delay exchange");

    amqp_table_entry_t entries[2] = {
        {.key = bytes_of("x-message-ttl"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = milliseconds}},
        {.key = bytes_of("x-dead-letter-exchange"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of("")}},
    };
    amqp_table_t arguments = {.num_entries = 2, .entries = entries};
    amqp_queue_declare(connection->state, BENCH_CHANNEL, bytes_of(name), 0, 1, 0, 0, arguments);
    bench_check_reply(connection, "queue.declare of a delay queue");

    amqp_queue_bind(connection->state, BENCH_CHANNEL, bytes_of(name), bytes_of(name), bytes_of(""), amqp_empty_table);
    bench_check_reply(connection, "queue.bind of a delay queue");
}

/* Writes "<product> <version>" from the broker's server properties. */
const char *bench_broker_version(bench_connection *connection, char *buffer, size_t size) {
    amqp_table_t *properties = amqp_get_server_properties(connection->state);
    char product[64] = "unknown broker";
    char version[64] = "unknown version";
    for (int index = 0; properties != NULL && index < properties->num_entries; index++) {
        amqp_table_entry_t *entry = &properties->entries[index];
        if (entry->value.kind != AMQP_FIELD_KIND_UTF8 && entry->value.kind != AMQP_FIELD_KIND_BYTES) {
            continue;
        }
        if (entry->key.len == 7 && memcmp(entry->key.bytes, "product", 7) == 0) {
            copy_bytes(product, sizeof product, entry->value.value.bytes);
        } else if (entry->key.len == 7 && memcmp(entry->key.bytes, "version", 7) == 0) {
            copy_bytes(version, sizeof version, entry->value.value.bytes);
        }
    }
    snprintf(buffer, size, "%s %s", product, version);
    return buffer;
}
