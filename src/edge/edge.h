/*
 * edge.h - the edge runtime: wires the hybrid's parts into one vigil serve
 * (docs/EDGE.md, "Runtime").
 *
 * Role edge: owns the clock (edge.test_clock_file), the outbox
 * (edge.data_dir/outbox.db), the uplink and the link monitor; registers the
 * detection observer (serve/request.h), whose cheap half runs on the front
 * end's thread (parse the answer, apply the policy and the rate limit, copy
 * an escalated frame into a bounded queue, drop and count when full) and
 * whose other half runs on the runtime's thread (event id, event document,
 * PNG re-encoded to JPEG, outbox_put, uplink_kick).  Link state goes to the
 * uplink; verdicts are kept by the outbox and published on MQTT
 * ({prefix}/edge/{node}/verdicts).  It adds GET /api/v1/events[/{id}],
 * GET /api/v1/edge/status and its lines of /metrics.
 *
 * Role cloud: a link monitor that publishes the heartbeat, and the status
 * route.  Role none: edge_create returns *out NULL and does nothing.
 */
#ifndef VIGIL_EDGE_EDGE_H
#define VIGIL_EDGE_EDGE_H

#include "core/config.h"
#include "serve/server.h"
#include "vigil/status.h"

typedef struct edge_runtime edge_runtime;

/* Creates the runtime for cfg->edge_role and registers its observer, routes
 * and metrics on server (before server_start).  cfg is copied; server is
 * borrowed and must outlive the runtime's use by requests (destroy the
 * runtime after server_stop).  OUT: *out, NULL for role none. */
vigil_status edge_create(const vigil_config *cfg, vigil_server *server, edge_runtime **out, vigil_error *err);
/* Commits what the queue holds, stops the threads, closes the outbox. */
void edge_destroy(edge_runtime *rt);

/* The status document of GET /api/v1/edge/status (malloc'd JSON, caller
 * frees; NULL when out of memory). */
char *edge_status_json(edge_runtime *rt);

#endif
