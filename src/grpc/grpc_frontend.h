/*
 * grpc_frontend.h - the daemon's gRPC listener: KServe v2
 * (inference.GRPCInferenceService), vigil.v1.Detection (+ the seed's
 * HailoInference alias) and grpc.health.v1.Health, on gRPC's core C API.
 *
 * It serves the same repository, schedulers and metrics as the HTTP side
 * (reached through the request layer, serve/request.h; struct vigil_server
 * stays opaque here): after parsing, a gRPC request is a
 * sched_job like any other.  See docs/GRPC.md.
 */
#ifndef VIGIL_GRPC_FRONTEND_H
#define VIGIL_GRPC_FRONTEND_H

#include <stdint.h>

#include "core/config.h"
#include "serve/server.h"
#include "vigil/status.h"

typedef struct grpc_frontend grpc_frontend;

/* Binds cfg->host:cfg->grpc_port (0 = a free port, logged) and starts the
 * completion-queue and completion threads.  server must be started and must
 * outlive the front end (stop it before server_destroy). */
vigil_status grpc_frontend_start(const vigil_config *cfg, vigil_server *server, grpc_frontend **out,
                                 vigil_error *err);

/* The bound port. */
uint16_t grpc_frontend_port(const grpc_frontend *fe);

/* Stops accepting calls, lets running calls finish (streams answer the frames
 * they have read, then end with UNAVAILABLE) within the shutdown timeout,
 * cancels what is left and frees everything.  NULL is ignored. */
void grpc_frontend_stop(grpc_frontend *fe);

#endif
