/*
 * server.h - the vigil daemon's HTTP side: owns the listener, the model
 * repository, the response cache and the metrics, and routes requests.
 *
 * server_create builds the context (nothing listens yet); server_start binds
 * the HTTP port (live from then on), loads the repository per its mode and
 * marks the server ready; server_stop drains (see server.c).  Routes:
 * docs/API.md.  Request path: docs/ARCHITECTURE.md.
 */
#ifndef VIGIL_SERVE_SERVER_H
#define VIGIL_SERVE_SERVER_H

#include <stdint.h>

#include "core/config.h"
#include "vigil/status.h"

typedef struct vigil_server vigil_server;

/* Copies what it needs from cfg; cfg need not outlive the server. */
vigil_status server_create(const vigil_config *cfg, vigil_server **out, vigil_error *err);
/* Binds and starts the HTTP listener. */
vigil_status server_start(vigil_server *server, vigil_error *err);
/* The bound HTTP port (useful with port 0). */
uint16_t server_http_port(const vigil_server *server);
/* Marks the server not ready (readyz -> 503), stops accepting, and waits up
 * to the shutdown timeout for in-flight requests. */
void server_stop(vigil_server *server);
void server_destroy(vigil_server *server);

/* Re-reads the auth key files (SIGHUP); on failure the old keys stay. */
vigil_status server_reload_auth(vigil_server *server, vigil_error *err);
/* Reads the tls.* files again (SIGHUP): new HTTP and gRPC handshakes use
 * them; on failure the current ones stay and err says why. */
vigil_status server_reload_tls(vigil_server *server, vigil_error *err);

/* Checks that this process could listen on host:port before anything starts
 * (port 0 always can): bound without SO_REUSEPORT, so a port another vigil
 * or any other program listens on is refused.  what names the listener in
 * the message ("HTTP", "gRPC") and setting its port's configuration path
 * ("http.port"): a refusal is one sentence that names the port and where to
 * change it, e.g. "HTTP port 8000 is already in use (setting http.port, flag
 * --http-port, variable VIGIL_HTTP_PORT)".  VIGIL_ERR_EXISTS when in use,
 * VIGIL_ERR_PERMISSION when not permitted, VIGIL_ERR_INVALID_ARGUMENT for a
 * host that is no address of this machine, VIGIL_ERR_IO otherwise. */
vigil_status server_port_check(const char *host, int64_t port, const char *what, const char *setting,
                               vigil_error *err);

#endif
