/*
 * http_gate.h - the HTTP listener in front of libmicrohttpd: owns the
 * listening socket, terminates TLS, and reads every byte a client sends
 * through the strict parser (http_strict.h) before the library may see it.
 *
 * Why: libmicrohttpd 0.9.75 (Debian 12's) answers what it refuses itself
 * (invalid Content-Length, malformed lines, oversized heads, broken chunk
 * framing) with its own HTML page, without X-Request-Id, some of them with
 * the status line sent twice, and joins obs-fold silently.  In front of it
 * nothing malformed reaches it: the gate refuses first, and the refusal is
 * answered by vigil's handler in the library's own response order (see
 * http_gate.c), as JSON with X-Request-Id like every other error.
 *
 * Each accepted client (after its TLS handshake, under HTTPS) gets a
 * socketpair; one end goes to the library through hand_over (the server
 * calls MHD_add_connection with the client's real address), the gate relays
 * between the client and the other end on one of its epoll threads.  The library
 * runs plain over the pair; its idle timeout, limits and suspend/resume are
 * unchanged.  What the handler needs to know of a connection that only the
 * gate knows (the client certificate's verdict, a pending refusal) it asks
 * by the library's end of the pair: gate_peer_verified, gate_refusal_take.
 */
#ifndef VIGIL_SERVE_HTTP_GATE_H
#define VIGIL_SERVE_HTTP_GATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth/tls.h"
#include "serve/http_strict.h"
#include "vigil/status.h"

typedef struct http_gate http_gate;

/* The path and the header of the request the gate writes to the library in
 * place of a refused one (and the trailer field of a chunked body it ended):
 * the handler answers it with the pending refusal (gate_refusal_take). */
#define GATE_REFUSAL_TARGET "/.vigil-gate-refusal"
#define GATE_REFUSAL_FIELD "X-Vigil-Gate-Refusal"

/* Direct bodies: a POST body with a Content-Length of at least
 * GATE_DIRECT_MIN bytes (and no Expect) does not cross the socketpair.  The
 * gate passes the head on with Content-Length: 0 and GATE_BODY_FIELD
 * carrying the real length (a client-sent GATE_BODY_FIELD is refused, 400)
 * and reads nothing more from that client until the handler decides: it
 * either answers without the body (the answer must close the connection:
 * the gate then drops the body) or hands the gate a buffer with
 * gate_body_take, and the gate reads the body from the client's socket (or
 * TLS session) straight into it.  64 KiB: below it the copies cost less
 * than the hand-off's two wake-ups. */
#define GATE_BODY_FIELD STRICT_DIRECT_FIELD
#define GATE_DIRECT_MIN ((uint64_t)64 << 10)

/* Called once for a body taken with gate_body_take, on a gate thread:
 * status VIGIL_OK when all of it is in the buffer; VIGIL_ERR_IO (the client
 * closed or failed mid-body), VIGIL_ERR_TIMEOUT (nothing arrived for
 * http.idle_timeout_s) or VIGIL_ERR_UNAVAILABLE (the server is stopping)
 * otherwise.  The gate never touches the buffer after it. */
typedef void (*gate_body_done)(void *user, vigil_status status);

typedef struct gate_options {
    const char *host;         /* an IPv4 or IPv6 address */
    uint16_t port;            /* 0: the kernel picks one */
    unsigned threads;         /* epoll threads (0: one); a client stays on the one that accepted it */
    unsigned max_connections; /* over all the threads; more wait in the listen backlog */
    unsigned idle_timeout_s;  /* TLS handshakes and closing clients are bounded by it */
    tls_material *tls;        /* NULL: plain HTTP; not owned */
    /* Gives the library its end of a new connection's pair (fd), with the
     * client's address; returns 0 when taken, -1 when refused (and then fd
     * has been closed).  Called on the gate's threads, several at once. */
    int (*hand_over)(void *user, int fd, const struct sockaddr *addr, socklen_t addr_len);
    void *user;
} gate_options;

/* Binds and listens (nothing is accepted before gate_start). */
vigil_status gate_create(const gate_options *options, http_gate **out, vigil_error *err);
uint16_t gate_port(const http_gate *gate);
/* Starts the gate's threads. */
vigil_status gate_start(http_gate *gate, vigil_error *err);
/* Closes the listening socket; open connections carry on. */
void gate_stop_accepting(http_gate *gate);
/* Waits up to wait_ms for every connection to finish (after the library
 * closed its ends, each client gets what is left and is closed). */
void gate_drain(http_gate *gate, int wait_ms);
/* Stops the threads and closes every connection. */
void gate_destroy(http_gate *gate);

/* For the connection whose library end is fd: 1 when its TLS client sent
 * a certificate chain that verified in the handshake. */
int gate_peer_verified(http_gate *gate, int fd);
/* For the connection whose library end is fd: when the gate refused what
 * the client sent, takes the refusal (HTTP status and message) and returns
 * 1; else 0. */
int gate_refusal_take(http_gate *gate, int fd, int *code, char *message, size_t size);
/* For the connection whose library end is fd, whose last head carried
 * GATE_BODY_FIELD with length bytes: has the gate read the body into
 * buffer (length bytes, the caller's until done is called) and call done
 * (see gate_body_done).  Returns 0 when taken, -1 when it cannot be (the
 * connection is gone, or the server is stopping): done is then never
 * called. */
int gate_body_take(http_gate *gate, int fd, char *buffer, size_t length, gate_body_done done, void *user);
/* Fails every body being read (VIGIL_ERR_UNAVAILABLE) and refuses new
 * ones; returns once every done has been called, or after wait_ms. */
void gate_bodies_abort(http_gate *gate, int wait_ms);

#endif
