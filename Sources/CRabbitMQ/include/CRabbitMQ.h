#ifndef CRABBITMQ_H
#define CRABBITMQ_H

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>

/// Logs in with the PLAIN mechanism and the given client properties.
///
/// `amqp_login_with_properties` is variadic, and Swift cannot call C variadic functions,
/// so this fixed-arity wrapper passes the user name and password on its behalf.
amqp_rpc_reply_t crabbitmq_login_plain(amqp_connection_state_t state,
                                       const char *vhost,
                                       int channel_max,
                                       int frame_max,
                                       int heartbeat,
                                       const amqp_table_t *client_properties,
                                       const char *user,
                                       const char *password);

#endif
