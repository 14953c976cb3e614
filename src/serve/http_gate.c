/*
 * http_gate.c - the listener in front of libmicrohttpd (see http_gate.h).
 *
 * Several threads (gate_options.threads, http.threads by default), each a
 * worker with its own epoll set, level-triggered, so that TLS record work
 * and relaying use every core.  The workers share one listening socket,
 * each holding it in its set with EPOLLEXCLUSIVE: a new client wakes one
 * worker that is waiting (a busy one is skipped), which accepts it and
 * keeps it for life, so a connection's state is only ever touched by one
 * thread and needs no lock.  Each wake-up accepts a single client, so a
 * burst of connections spreads over the idle workers instead of landing on
 * the first one awake.  http.max_connections counts over all the workers
 * (gate->n_links); a worker that finds it reached takes the listener out of
 * its set until one of its own links closes (or, at the latest, until its
 * next sweep).
 *
 * A connection (gate_link) is the client's socket, optionally its GnuTLS
 * session, and the gate's end of a socketpair whose other end the library
 * owns.  Every event on either socket runs link_pump, which moves bytes as
 * far as they will go:
 *
 *   client -> in -> strict_feed -> to_server -> pair      (checked)
 *   pair -> to_client -> client                            (as they are)
 *
 * Each buffer is bounded; a full one stops reading its source, so a slow
 * side slows the other and memory stays at three buffers a connection
 * (allocated while bytes are in flight, given back when they are all out:
 * five hundred idle connections hold none).
 *
 * A refusal must be answered after the answers the library still owes for
 * the requests before it, in order, and as JSON with X-Request-Id.  The
 * parser passes a head on only once it is whole and re-frames chunked
 * bodies, so at the moment of a refusal the library has seen whole
 * requests and, at most, the start of a chunked body ending on a chunk
 * boundary.  The gate then writes the library one more request of its own
 * (GET GATE_REFUSAL_TARGET with the GATE_REFUSAL_FIELD header and
 * Connection: close) or ends the open chunked body with a last chunk
 * carrying GATE_REFUSAL_FIELD as a trailer (client trailers are never
 * passed on), keeps the refusal in the link, and reads nothing more from
 * the client.  The handler (server.c) answers that request with the
 * refusal through the same code as every other error; the library writes
 * it after the earlier answers and closes the pair; the gate passes
 * everything on, then closes the client.
 *
 * Closing: when the library closes its end, the client gets what is left,
 * then a FIN (and close_notify under TLS), and the gate reads and drops what
 * the client still sends for up to GATE_LINGER_NS before it closes the
 * socket: closing with unread bytes would send a reset that can destroy
 * the answer before the client reads it.
 *
 * Direct bodies (GATE_DIRECT_MIN, http_gate.h): relaying a decoded camera
 * frame through the pair cost each body byte four copies (socket to `in`,
 * `in` to to_server, to_server into the pair, the pair into the library's
 * buffer, then the handler's) and two threads' wake-ups per 64 KiB, about
 * half of the server's CPU per frame on the Hailo path.  So a large POST
 * body of known length is not relayed: the parser passes its head on
 * rewritten (Content-Length: 0, GATE_BODY_FIELD: n) and stops
 * (STRICT_DIRECT); the link waits (DIRECT_WAITING, the client unread)
 * until the handler, on the library's thread, either answers without the
 * body, closing the connection (401, 413, 503: the gate lingers and drops
 * the body as for any close), or hands over a buffer (gate_body_take: the
 * link goes on the worker's `takes` queue, under lock, and the worker is
 * woken through its eventfd).  The worker then reads the client straight
 * into that buffer (DIRECT_READING: what was left in `in` first, then
 * recv or gnutls_record_recv into the buffer, one copy, the kernel's or
 * the decryption's) and calls done once: all of it, the client gone, its
 * http.idle_timeout_s passed with nothing sent (the library's own idle
 * rule, which it cannot apply to a suspended connection), or the server
 * stopping (gate_bodies_abort).  Then the parser reads on: pipelined
 * requests after the body go their usual way.
 *
 * The handler runs on the library's threads and asks about a connection by
 * its end of the pair (gate_peer_verified, gate_refusal_take): the links
 * are found in by_fd, under lock (shared by the workers; taken only when a
 * connection is handed over or closed, and by those two questions).  An fd number is reused only after the
 * library closed it; an entry is overwritten then, and removed by its link
 * only while it is still its own.
 */
#include "serve/http_gate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "serve/http_strict.h"

#define GATE_IN_CAP STRICT_HEAD_MAX
#define GATE_INJECT_MAX 160 /* room kept in to_server for the gate's own request */
#define GATE_TO_SERVER_CAP (STRICT_HEAD_MAX + STRICT_CHUNK_FRAMING + STRICT_DIRECT_GROWTH + GATE_INJECT_MAX)
#define GATE_TO_CLIENT_CAP 16384
#define GATE_TLS_RECORD 16384
#define GATE_LINGER_NS INT64_C(1000000000)
#define GATE_SWEEP_NS INT64_C(200000000)
#define GATE_ACCEPT_PAUSE_NS INT64_C(100000000)

enum { IO_AGAIN = -1, IO_FATAL = -2, IO_RETRY = -3 };

/* Where a link is with a direct body (GATE_DIRECT_MIN). */
enum {
    DIRECT_NONE = 0,
    DIRECT_WAITING, /* its head went to the library: the client is not read until the handler decides */
    DIRECT_READING, /* the client's bytes go into the handler's buffer */
    DIRECT_FAILED   /* done was told why: nothing more is read, the library closes */
};

typedef struct gate_link gate_link;
typedef struct gate_worker gate_worker;

/* What an epoll event points at: one side of a link. */
typedef struct gate_end {
    gate_link *link;
    int is_client;
} gate_end;

struct gate_link {
    http_gate *gate;
    gate_worker *worker;    /* the thread that owns it, for life */
    gate_link *prev, *next; /* worker->links, or worker->dead once closed */
    int closed;
    int client_fd;
    int pair_fd;   /* the gate's end; -1 before the hand-over */
    int server_fd; /* the library's end (owned by it), the key in by_fd; -1 when none */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    gnutls_session_t tls; /* NULL for plain HTTP */
    int handshaking;
    int verified; /* under gate->lock once handed over */
    strict_parser parser;
    char *buf; /* in | to_server | to_client, while bytes are in flight */
    size_t in_len, to_server_len, to_client_len;
    size_t tls_pending; /* length of a gnutls_record_send to repeat */
    int client_eof, server_write_closed, server_eof, pair_shut, refusing, lingering, counted_active;
    int64_t deadline_ns; /* 0: none (the library times the connection) */
    int refusal_pending; /* these three under gate->lock */
    int refusal_code;
    char refusal_message[200];
    int direct;           /* DIRECT_*: a direct body */
    char *body;           /* while DIRECT_READING: the handler's buffer, body_len bytes */
    size_t body_len, body_filled;
    gate_body_done body_done;
    void *body_user;
    int64_t body_deadline_ns; /* http.idle_timeout_s after the last bytes of the body */
    int take_pending;         /* these five under gate->lock: a gate_body_take the worker has not seen */
    char *take_buffer;
    size_t take_length;
    gate_body_done take_done;
    void *take_user;
    gate_link *take_next; /* worker->takes */
    gate_end client_end, pair_end;
    uint32_t client_events, pair_events; /* registered with epoll; 0 = not registered */
};

/* One epoll thread and the links it owns; only that thread touches them. */
struct gate_worker {
    http_gate *gate;
    int epoll_fd;
    int wake_fd;
    pthread_t thread;
    int started;
    int listening;               /* the listening socket is in this worker's epoll set */
    int released;                /* after gate_stop_accepting: never touches the listening socket again */
    int64_t accept_paused_until; /* out of descriptors: the listener rests until then */
    int accept_full;             /* at http.max_connections: the listener is out of the set */
    char listen_tag, wake_tag;   /* epoll data for the listening socket and the eventfd */
    gate_link *links, *dead;
    gate_link *takes; /* links with a take_pending, under gate->lock */
};

struct http_gate {
    gate_options opt;
    char host[64];
    int listen_fd; /* closed by the last worker to let go of it */
    uint16_t port;
    gate_worker *workers;
    unsigned n_workers;
    int started;
    atomic_int stop;
    atomic_int stop_accepting;
    atomic_uint released; /* workers that let go of the listening socket */
    atomic_int active;    /* links not yet closed or lingering */
    atomic_uint n_links;  /* links open, over all the workers (http.max_connections) */
    atomic_int bodies_abort; /* gate_bodies_abort: no more direct bodies */
    atomic_int bodies;       /* direct bodies taken whose done has not been called */
    gnutls_certificate_credentials_t cred;
    pthread_mutex_t lock; /* by_fd, and the fields of a link marked "under gate->lock" */
    gate_link **by_fd;
    size_t by_fd_cap;
};

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ------------------------------------------------------------ by_fd */

static int table_put(http_gate *gate, int fd, gate_link *l) {
    pthread_mutex_lock(&gate->lock);
    if ((size_t)fd >= gate->by_fd_cap) {
        size_t cap = gate->by_fd_cap ? gate->by_fd_cap : 256;
        while (cap <= (size_t)fd) cap *= 2;
        gate_link **grown = vigil_realloc(gate->by_fd, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&gate->lock);
            return -1;
        }
        memset(grown + gate->by_fd_cap, 0, (cap - gate->by_fd_cap) * sizeof *grown);
        gate->by_fd = grown;
        gate->by_fd_cap = cap;
    }
    gate->by_fd[fd] = l;
    pthread_mutex_unlock(&gate->lock);
    return 0;
}

static void table_remove(http_gate *gate, int fd, gate_link *l) {
    pthread_mutex_lock(&gate->lock);
    if (fd >= 0 && (size_t)fd < gate->by_fd_cap && gate->by_fd[fd] == l) gate->by_fd[fd] = NULL;
    pthread_mutex_unlock(&gate->lock);
}

static gate_link *table_find_locked(http_gate *gate, int fd) {
    return fd >= 0 && (size_t)fd < gate->by_fd_cap ? gate->by_fd[fd] : NULL;
}

int gate_peer_verified(http_gate *gate, int fd) {
    if (!gate) return 0;
    pthread_mutex_lock(&gate->lock);
    gate_link *l = table_find_locked(gate, fd);
    int verified = l ? l->verified : 0;
    pthread_mutex_unlock(&gate->lock);
    return verified;
}

int gate_refusal_take(http_gate *gate, int fd, int *code, char *message, size_t size) {
    if (!gate) return 0;
    pthread_mutex_lock(&gate->lock);
    gate_link *l = table_find_locked(gate, fd);
    int taken = l && l->refusal_pending;
    if (taken) {
        *code = l->refusal_code;
        snprintf(message, size, "%s", l->refusal_message);
        l->refusal_pending = 0;
    }
    pthread_mutex_unlock(&gate->lock);
    return taken;
}

/* ------------------------------------------------------------ links */

static char *link_in(gate_link *l) { return l->buf; }
static char *link_to_server(gate_link *l) { return l->buf + GATE_IN_CAP; }
static char *link_to_client(gate_link *l) { return l->buf + GATE_IN_CAP + GATE_TO_SERVER_CAP; }

/* Puts the listening socket in the worker's epoll set, or takes it out.
 * EPOLLEXCLUSIVE: a new client wakes one waiting worker, not all of them. */
static void worker_listen(gate_worker *w, int on) {
    if (w->released || on == w->listening) return;
    http_gate *gate = w->gate;
    if (on) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &w->listen_tag};
        if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, gate->listen_fd, &ev) != 0) return;
    } else {
        epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, gate->listen_fd, NULL);
    }
    w->listening = on;
}

/* Tells the handler, once, how its body ended. */
static void body_done_call(http_gate *gate, gate_body_done done, void *user, vigil_status status) {
    done(user, status);
    atomic_fetch_sub(&gate->bodies, 1);
}

/* The body the handler took (or is taking) will not arrive: done says
 * why, and the link reads nothing more of it. */
static void link_body_fail(gate_link *l, vigil_status status) {
    http_gate *gate = l->gate;
    gate_body_done done = NULL;
    void *user = NULL;
    pthread_mutex_lock(&gate->lock);
    if (l->take_pending) { /* out of the worker's queue */
        gate_link **at = &l->worker->takes;
        while (*at != l) at = &(*at)->take_next;
        *at = l->take_next;
        l->take_pending = 0;
        done = l->take_done;
        user = l->take_user;
    }
    pthread_mutex_unlock(&gate->lock);
    if (done) body_done_call(gate, done, user, status);
    if (l->direct == DIRECT_READING) body_done_call(gate, l->body_done, l->body_user, status);
    if (l->direct) l->direct = DIRECT_FAILED;
    l->body = NULL;
}

static void link_close(gate_link *l) {
    if (l->closed) return;
    http_gate *gate = l->gate;
    l->closed = 1;
    if (l->server_fd >= 0) table_remove(gate, l->server_fd, l); /* no take can come after this */
    link_body_fail(l, VIGIL_ERR_IO);
    if (l->tls) gnutls_deinit(l->tls);
    l->tls = NULL;
    if (l->client_fd >= 0) close(l->client_fd); /* leaves the epoll set with it */
    if (l->pair_fd >= 0) close(l->pair_fd);
    l->client_fd = l->pair_fd = -1;
    vigil_free(l->buf);
    l->buf = NULL;
    if (l->counted_active) atomic_fetch_sub(&gate->active, 1);
    l->counted_active = 0;
    /* Freed after the current batch of events, which may still name it. */
    gate_worker *w = l->worker;
    if (l->prev) l->prev->next = l->next;
    else w->links = l->next;
    if (l->next) l->next->prev = l->prev;
    l->prev = NULL;
    l->next = w->dead;
    w->dead = l;
    atomic_fetch_sub(&gate->n_links, 1);
    if (w->accept_full && !w->accept_paused_until) { /* a slot is free: accept again */
        w->accept_full = 0;
        worker_listen(w, 1);
    }
}

static void watch(gate_worker *w, int fd, gate_end *end, uint32_t *registered, uint32_t want) {
    if (fd < 0 || want == *registered) return;
    struct epoll_event ev = {.events = want, .data.ptr = end};
    /* A socket nobody wants to hear from leaves the set: a hung-up one
     * would otherwise report EPOLLHUP on every wait. */
    if (want == 0) epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    else if (*registered == 0) epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    else epoll_ctl(w->epoll_fd, EPOLL_CTL_MOD, fd, &ev);
    *registered = want;
}

static void link_watch(gate_link *l) {
    uint32_t client = 0, pair = 0;
    if (l->handshaking) {
        client = gnutls_record_get_direction(l->tls) ? EPOLLOUT : EPOLLIN;
    } else {
        int direct = l->direct == DIRECT_READING && l->body_filled < l->body_len;
        int reading = !l->client_eof && (l->lingering || direct ||
                                         (!l->refusing && !l->server_eof && !l->direct && l->in_len < GATE_IN_CAP));
        if (reading) client |= EPOLLIN;
        if (l->to_client_len || l->tls_pending) client |= EPOLLOUT;
    }
    if (l->pair_fd >= 0 && !l->server_eof) {
        if (l->to_client_len < GATE_TO_CLIENT_CAP) pair |= EPOLLIN;
        if (l->to_server_len && !l->server_write_closed) pair |= EPOLLOUT;
    }
    watch(l->worker, l->client_fd, &l->client_end, &l->client_events, client);
    watch(l->worker, l->pair_fd, &l->pair_end, &l->pair_events, pair);
}

/* The pair, handed to the library; 0 when the link closed instead. */
static int link_hand_over(gate_link *l) {
    http_gate *gate = l->gate;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        LOG_W("http gate: socketpair: %s", strerror(errno));
        link_close(l);
        return 0;
    }
    l->pair_fd = sv[0];
    if (table_put(gate, sv[1], l) != 0) {
        close(sv[1]);
        link_close(l);
        return 0;
    }
    l->server_fd = sv[1];
    if (gate->opt.hand_over(gate->opt.user, sv[1], (const struct sockaddr *)&l->addr, l->addr_len) != 0) {
        table_remove(gate, sv[1], l); /* the library closed it */
        l->server_fd = -1;
        link_close(l);
        return 0;
    }
    return 1;
}

/* Runs the handshake on; 1 once it is done and the link handed over. */
static int link_handshake(gate_link *l) {
    int rc = gnutls_handshake(l->tls);
    if (rc == GNUTLS_E_SUCCESS) {
        tls_material *tls = l->gate->opt.tls;
        l->handshaking = 0;
        l->deadline_ns = 0;
        l->verified = tls_client_ca_pem(tls) && tls_session_verified(tls, l->tls); /* before by_fd knows it */
        return link_hand_over(l);
    }
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(rc)) {
        link_watch(l);
        return 0;
    }
    link_close(l);
    return 0;
}

static ssize_t client_recv(gate_link *l, char *to, size_t room) {
    if (l->tls) {
        ssize_t n = gnutls_record_recv(l->tls, to, room);
        if (n >= 0) return n;
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) return IO_AGAIN;
        if (n == GNUTLS_E_PREMATURE_TERMINATION) return 0; /* closed without close_notify: an end all the same */
        return gnutls_error_is_fatal((int)n) ? IO_FATAL : IO_RETRY;
    }
    ssize_t n = recv(l->client_fd, to, room, 0);
    if (n >= 0) return n;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? IO_AGAIN : IO_FATAL;
}

/* Sends the start of to_client; returns the bytes sent or an IO_ code. */
static ssize_t client_send(gate_link *l) {
    char *data = link_to_client(l);
    if (l->tls) {
        /* GnuTLS wants a send that could not finish repeated as it was. */
        size_t len = l->tls_pending ? l->tls_pending : l->to_client_len;
        if (len > GATE_TLS_RECORD) len = GATE_TLS_RECORD;
        ssize_t n = gnutls_record_send(l->tls, data, len);
        if (n > 0) {
            l->tls_pending = 0;
            return n;
        }
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            l->tls_pending = len;
            return IO_AGAIN;
        }
        return IO_FATAL;
    }
    ssize_t n = send(l->client_fd, data, l->to_client_len, MSG_NOSIGNAL);
    if (n >= 0) return n;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? IO_AGAIN : IO_FATAL;
}

/* The parser refused: keeps the refusal for the handler and writes the
 * library the request (or the last chunk) it will answer it on. */
static void link_refuse(gate_link *l) {
    http_gate *gate = l->gate;
    pthread_mutex_lock(&gate->lock);
    l->refusal_pending = 1;
    l->refusal_code = l->parser.code;
    snprintf(l->refusal_message, sizeof l->refusal_message, "%s", l->parser.message);
    pthread_mutex_unlock(&gate->lock);
    l->refusing = 1;
    l->in_len = 0;
    static const char request[] = "GET " GATE_REFUSAL_TARGET " HTTP/1.1\r\nHost: gate\r\n" GATE_REFUSAL_FIELD
                                  ": 1\r\nConnection: close\r\n\r\n";
    static const char last_chunk[] = "0\r\n" GATE_REFUSAL_FIELD ": 1\r\n\r\n";
    const char *inject = l->parser.refused_in_chunked ? last_chunk : request;
    size_t n = l->parser.refused_in_chunked ? sizeof last_chunk - 1 : sizeof request - 1;
    memcpy(link_to_server(l) + l->to_server_len, inject, n); /* strict_feed left GATE_INJECT_MAX free */
    l->to_server_len += n;
    l->deadline_ns = now_ns() + (int64_t)gate->opt.idle_timeout_s * 1000000000;
}

static void link_linger(gate_link *l) {
    link_body_fail(l, VIGIL_ERR_IO); /* the library closed while the body came */
    if (l->tls) gnutls_bye(l->tls, GNUTLS_SHUT_WR); /* best effort on a non-blocking socket */
    shutdown(l->client_fd, SHUT_WR);
    l->lingering = 1;
    l->in_len = 0;
    l->deadline_ns = now_ns() + GATE_LINGER_NS;
    if (l->counted_active) atomic_fetch_sub(&l->gate->active, 1);
    l->counted_active = 0;
}

/* 1 when a read that returned n of room bytes may have left more behind:
 * a short read drained the socket (epoll says when there is more), but
 * GnuTLS may hold decrypted bytes the socket no longer shows. */
static int more_to_read(gate_link *l, ssize_t n, size_t room, int is_client) {
    if (n <= 0) return 0;
    if (is_client && l->tls && gnutls_record_check_pending(l->tls) > 0) return 1;
    return (size_t)n == room;
}

/* DIRECT_READING: moves what the client sent into the handler's buffer,
 * first what is left in `in` after the head, then straight from the
 * socket (or the TLS session), and calls done once the body is whole.
 * Returns 1 on progress, 0 on none, -1 when the link closed. */
static int link_body_read(gate_link *l, int *client_readable) {
    int progress = 0;
    if (l->in_len) {
        size_t take = l->body_len - l->body_filled;
        if (take > l->in_len) take = l->in_len;
        memcpy(l->body + l->body_filled, link_in(l), take);
        memmove(link_in(l), link_in(l) + take, l->in_len - take);
        l->in_len -= take;
        l->body_filled += take;
        progress = take > 0;
    }
    if (l->body_filled < l->body_len && *client_readable && !l->client_eof) {
        size_t room = l->body_len - l->body_filled;
        ssize_t n = client_recv(l, l->body + l->body_filled, room);
        if (n == IO_FATAL) {
            link_close(l);
            return -1;
        }
        if (n > 0) {
            l->body_filled += (size_t)n;
            l->body_deadline_ns = now_ns() + (int64_t)l->gate->opt.idle_timeout_s * 1000000000;
        } else if (n == 0) {
            l->client_eof = 1; /* passed on to the library like any half-close */
            link_body_fail(l, VIGIL_ERR_IO);
        }
        progress |= n != IO_AGAIN;
        *client_readable = n == IO_RETRY || more_to_read(l, n, room, 1);
    }
    if (l->direct == DIRECT_READING && l->body_filled == l->body_len) {
        l->direct = DIRECT_NONE;
        l->body = NULL;
        strict_direct_done(&l->parser);
        body_done_call(l->gate, l->body_done, l->body_user, VIGIL_OK);
        progress = 1;
    }
    return progress;
}

/* Moves bytes as far as they go.  client_readable and pair_readable say
 * which sockets epoll reported readable (or may hold bytes): only those are
 * read, and only until a short read, so that a request costs no reads that
 * find nothing. */
static void link_pump(gate_link *l, int client_readable, int pair_readable) {
    if (l->handshaking) {
        if (!link_handshake(l)) return;
        client_readable = pair_readable = 1; /* the handshake may have left records behind */
    }
    if (!l->buf && !(l->buf = vigil_malloc(GATE_IN_CAP + GATE_TO_SERVER_CAP + GATE_TO_CLIENT_CAP))) {
        LOG_W("http gate: out of memory for a connection's buffers");
        link_close(l);
        return;
    }
    for (int progress = 1; progress;) {
        progress = 0;
        if (l->lingering) { /* drop what the client still sends */
            char sink[4096];
            ssize_t n = client_recv(l, sink, sizeof sink);
            if (n == 0 || n == IO_FATAL) {
                link_close(l);
                return;
            }
            progress = n > 0 || n == IO_RETRY;
            continue;
        }
        if (l->direct == DIRECT_READING) {
            int rc = link_body_read(l, &client_readable);
            if (rc < 0) return; /* closed */
            progress |= rc;
        }
        if (client_readable && !l->client_eof && !l->refusing && !l->server_eof && !l->direct && l->in_len < GATE_IN_CAP) {
            size_t room = GATE_IN_CAP - l->in_len;
            ssize_t n = client_recv(l, link_in(l) + l->in_len, room);
            if (n > 0) l->in_len += (size_t)n;
            else if (n == 0) l->client_eof = 1;
            else if (n == IO_FATAL) {
                link_close(l);
                return;
            }
            progress |= n != IO_AGAIN;
            client_readable = n == IO_RETRY || more_to_read(l, n, room, 1);
        }
        if (!l->refusing && l->in_len > 0) {
            size_t before = l->to_server_len;
            size_t used = strict_feed(&l->parser, link_in(l), l->in_len, link_to_server(l),
                                      GATE_TO_SERVER_CAP - GATE_INJECT_MAX, &l->to_server_len);
            if (used) memmove(link_in(l), link_in(l) + used, l->in_len - used);
            l->in_len -= used;
            progress |= used > 0 || l->to_server_len != before;
            if (l->parser.state == STRICT_REFUSED) {
                link_refuse(l);
                progress = 1;
            }
            if (l->parser.state == STRICT_DIRECT && !l->direct) l->direct = DIRECT_WAITING; /* until gate_body_take */
        }
        if (l->to_server_len && l->pair_fd >= 0 && !l->server_write_closed) {
            ssize_t n = send(l->pair_fd, link_to_server(l), l->to_server_len, MSG_NOSIGNAL);
            if (n > 0) {
                memmove(link_to_server(l), link_to_server(l) + n, l->to_server_len - (size_t)n);
                l->to_server_len -= (size_t)n;
                progress = 1;
            } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                l->server_write_closed = 1; /* the library stopped reading; its answer may still be on the way */
                l->to_server_len = 0;
                progress = 1;
            }
        }
        if (l->client_eof && !l->refusing && !l->pair_shut && l->pair_fd >= 0 && !l->to_server_len &&
            !l->server_write_closed) {
            shutdown(l->pair_fd, SHUT_WR); /* the client's half-close, passed on */
            l->pair_shut = 1;
        }
        if (pair_readable && l->pair_fd >= 0 && !l->server_eof && l->to_client_len < GATE_TO_CLIENT_CAP) {
            size_t room = GATE_TO_CLIENT_CAP - l->to_client_len;
            ssize_t n = recv(l->pair_fd, link_to_client(l) + l->to_client_len, room, 0);
            if (n > 0) {
                l->to_client_len += (size_t)n;
                progress = 1;
            } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                l->server_eof = 1;
                progress = 1;
            }
            pair_readable = more_to_read(l, n, room, 0);
        }
        if (l->to_client_len || l->tls_pending) {
            ssize_t n = client_send(l);
            if (n == IO_FATAL) {
                link_close(l);
                return;
            }
            if (n > 0) {
                memmove(link_to_client(l), link_to_client(l) + n, l->to_client_len - (size_t)n);
                l->to_client_len -= (size_t)n;
                progress = 1;
            }
        }
        if (l->server_eof && !l->to_client_len && !l->tls_pending) {
            if (l->client_eof) {
                link_close(l);
                return;
            }
            link_linger(l);
            progress = 1;
        }
    }
    link_watch(l);
    if (!l->in_len && !l->to_server_len && !l->to_client_len && !l->tls_pending) { /* nothing in flight */
        vigil_free(l->buf);
        l->buf = NULL;
    }
}

/* A new client, already counted in gate->n_links. */
static void link_open(gate_worker *w, int fd, const struct sockaddr_storage *addr, socklen_t addr_len) {
    http_gate *gate = w->gate;
    gate_link *l = vigil_calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        atomic_fetch_sub(&gate->n_links, 1);
        return;
    }
    l->gate = gate;
    l->worker = w;
    l->client_fd = fd;
    l->pair_fd = l->server_fd = -1;
    l->addr = *addr;
    l->addr_len = addr_len;
    l->client_end = (gate_end){l, 1};
    l->pair_end = (gate_end){l, 0};
    strict_init(&l->parser);
    l->parser.direct_min = GATE_DIRECT_MIN;
    l->next = w->links;
    if (w->links) w->links->prev = l;
    w->links = l;
    l->counted_active = 1;
    atomic_fetch_add(&gate->active, 1);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    tls_material *tls = gate->opt.tls;
    if (tls) {
        if (gnutls_init(&l->tls, GNUTLS_SERVER) < 0) {
            l->tls = NULL;
            link_close(l);
            return;
        }
        if (gnutls_credentials_set(l->tls, GNUTLS_CRD_CERTIFICATE, gate->cred) < 0 ||
            gnutls_set_default_priority(l->tls) < 0) {
            link_close(l);
            return;
        }
        tls_session_attach(tls, l->tls);
        gnutls_transport_set_int(l->tls, fd);
        l->handshaking = 1;
        l->deadline_ns = now_ns() + (int64_t)gate->opt.idle_timeout_s * 1000000000;
    } else if (!link_hand_over(l)) {
        return;
    }
    link_pump(l, 1, 0);
}

/* ------------------------------------------------------------ the thread */

/* Accepts one client (see the top of the file for why only one). */
static void worker_accept(gate_worker *w) {
    http_gate *gate = w->gate;
    if (w->released || atomic_load(&gate->stop_accepting)) return;
    /* The slot is taken before the accept, so that the workers together
     * never pass http.max_connections; the rest wait in the backlog. */
    if (atomic_fetch_add(&gate->n_links, 1) >= gate->opt.max_connections) {
        atomic_fetch_sub(&gate->n_links, 1);
        worker_listen(w, 0);
        w->accept_full = 1;
        return;
    }
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int fd = accept4(gate->listen_fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        atomic_fetch_sub(&gate->n_links, 1);
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* Out of descriptors: a level-triggered listener would wake
             * the loop at once, so it rests a moment. */
            LOG_W("http gate: cannot accept: %s", strerror(errno));
            worker_listen(w, 0);
            w->accept_paused_until = now_ns() + GATE_ACCEPT_PAUSE_NS;
        }
        return; /* EAGAIN: another worker took it */
    }
    link_open(w, fd, &addr, len);
}

/* gate_stop_accepting: this worker lets go of the listening socket, and
 * the last one to do so closes it (no worker can be in accept4 then). */
static void worker_release(gate_worker *w) {
    if (w->released) return;
    worker_listen(w, 0);
    w->released = 1;
    http_gate *gate = w->gate;
    if (atomic_fetch_add(&gate->released, 1) + 1 == gate->n_workers && gate->listen_fd >= 0) {
        close(gate->listen_fd);
        gate->listen_fd = -1;
    }
}

static void worker_sweep(gate_worker *w, int64_t now) {
    http_gate *gate = w->gate;
    if (w->accept_paused_until && now >= w->accept_paused_until) {
        w->accept_paused_until = 0;
        w->accept_full = 1; /* tried again just below */
    }
    /* Full once, with the slot freed by another worker's link. */
    if (w->accept_full && !w->accept_paused_until && atomic_load(&gate->n_links) < gate->opt.max_connections) {
        w->accept_full = 0;
        worker_listen(w, 1);
    }
    for (gate_link *l = w->links, *next; l; l = next) {
        next = l->next;
        if (l->deadline_ns && now >= l->deadline_ns) {
            link_close(l);
        } else if (l->direct == DIRECT_READING && now >= l->body_deadline_ns) {
            link_body_fail(l, VIGIL_ERR_TIMEOUT); /* closed unanswered, as the library's idle timeout does */
            link_watch(l);
        }
    }
}

static void worker_free_dead(gate_worker *w) {
    for (gate_link *l = w->dead, *next; l; l = next) {
        next = l->next;
        vigil_free(l);
    }
    w->dead = NULL;
}

/* The bodies the handler took for this worker's links: each starts being
 * read (or fails, when the server is stopping); then, once the server is
 * stopping, every body still being read fails. */
static void worker_takes(gate_worker *w) {
    http_gate *gate = w->gate;
    pthread_mutex_lock(&gate->lock);
    gate_link *list = w->takes;
    w->takes = NULL;
    for (gate_link *l = list; l; l = l->take_next) {
        l->take_pending = 0;
        l->body = l->take_buffer;
        l->body_len = l->take_length;
        l->body_filled = 0;
        l->body_done = l->take_done;
        l->body_user = l->take_user;
    }
    pthread_mutex_unlock(&gate->lock);
    int aborting = atomic_load(&gate->bodies_abort);
    for (gate_link *l = list, *next; l; l = next) { /* only this thread closes them: none has */
        next = l->take_next;
        if (l->direct != DIRECT_WAITING || aborting) {
            body_done_call(gate, l->body_done, l->body_user, aborting ? VIGIL_ERR_UNAVAILABLE : VIGIL_ERR_STATE);
            l->body = NULL;
            if (l->direct) l->direct = DIRECT_FAILED;
            link_watch(l);
            continue;
        }
        l->direct = DIRECT_READING;
        l->body_deadline_ns = now_ns() + (int64_t)gate->opt.idle_timeout_s * 1000000000;
        link_pump(l, 1, 0);
    }
    if (aborting)
        for (gate_link *l = w->links; l; l = l->next)
            if (l->direct == DIRECT_READING) {
                link_body_fail(l, VIGIL_ERR_UNAVAILABLE);
                link_watch(l);
            }
}

static void *worker_run(void *arg) {
    gate_worker *w = arg;
    http_gate *gate = w->gate;
    struct epoll_event events[64];
    int64_t last_sweep = now_ns();
    while (!atomic_load(&gate->stop)) {
        int n = epoll_wait(w->epoll_fd, events, 64, 100);
        for (int i = 0; i < n; i++) {
            void *ptr = events[i].data.ptr;
            if (ptr == &w->wake_tag) {
                uint64_t count;
                if (read(w->wake_fd, &count, sizeof count) < 0) { /* nothing to do: it only wakes the loop */
                }
                if (atomic_load(&gate->stop_accepting)) worker_release(w);
                worker_takes(w);
            } else if (ptr == &w->listen_tag) {
                worker_accept(w);
            } else {
                gate_end *end = ptr;
                gate_link *l = end->link;
                int readable = (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0;
                if (!l->closed) link_pump(l, end->is_client && readable, !end->is_client && readable);
            }
        }
        worker_free_dead(w);
        int64_t now = now_ns();
        if (now - last_sweep >= GATE_SWEEP_NS) {
            worker_sweep(w, now);
            worker_free_dead(w);
            last_sweep = now;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

vigil_status gate_create(const gate_options *options, http_gate **out, vigil_error *err) {
    *out = NULL;
    http_gate *gate = vigil_calloc(1, sizeof *gate);
    if (!gate) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "http gate: out of memory");
    gate->opt = *options;
    snprintf(gate->host, sizeof gate->host, "%s", options->host);
    gate->opt.host = gate->host;
    gate->listen_fd = -1;
    pthread_mutex_init(&gate->lock, NULL);
    *out = gate;
    gate->n_workers = options->threads ? options->threads : 1;
    if (!(gate->workers = vigil_calloc(gate->n_workers, sizeof *gate->workers)))
        return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "http gate: out of memory");
    for (unsigned i = 0; i < gate->n_workers; i++) {
        gate->workers[i].gate = gate;
        gate->workers[i].epoll_fd = gate->workers[i].wake_fd = -1;
    }

    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    socklen_t len;
    if (inet_pton(AF_INET, gate->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(options->port);
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, gate->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(options->port);
        len = sizeof *v6;
    } else {
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "host '%s' is not an IPv4 or IPv6 address", gate->host);
    }
    gate->listen_fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (gate->listen_fd < 0) return vigil_error_set(err, VIGIL_ERR_IO, "cannot open a socket: %s", strerror(errno));
    int one = 1;
    setsockopt(gate->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr.ss_family == AF_INET6) setsockopt(gate->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(gate->listen_fd, (struct sockaddr *)&addr, len) != 0 || listen(gate->listen_fd, 1024) != 0)
        return vigil_error_set(err, VIGIL_ERR_IO, "cannot listen on %s:%u: %s", gate->host, (unsigned)options->port,
                               strerror(errno));
    if (getsockname(gate->listen_fd, (struct sockaddr *)&addr, &len) == 0)
        gate->port = ntohs(addr.ss_family == AF_INET6 ? v6->sin6_port : v4->sin_port);

    if (options->tls) {
        if (gnutls_certificate_allocate_credentials(&gate->cred) < 0)
            return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "http gate: out of memory");
        /* The certificate comes from a callback so that SIGHUP can swap it. */
        gnutls_certificate_set_retrieve_function2(gate->cred, tls_http_cert_callback);
        const char *ca = tls_client_ca_pem(options->tls);
        if (ca) { /* names the acceptable CAs in the certificate request */
            gnutls_datum_t datum = {(unsigned char *)ca, (unsigned)strlen(ca)};
            if (gnutls_certificate_set_x509_trust_mem(gate->cred, &datum, GNUTLS_X509_FMT_PEM) < 0)
                return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "tls.client_ca_file: not a CA bundle");
        }
    }
    for (unsigned i = 0; i < gate->n_workers; i++) {
        gate_worker *w = &gate->workers[i];
        w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->epoll_fd < 0 || w->wake_fd < 0)
            return vigil_error_set(err, VIGIL_ERR_IO, "http gate: epoll: %s", strerror(errno));
        struct epoll_event wake = {.events = EPOLLIN, .data.ptr = &w->wake_tag};
        if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, w->wake_fd, &wake) != 0)
            return vigil_error_set(err, VIGIL_ERR_IO, "http gate: epoll: %s", strerror(errno));
        worker_listen(w, 1);
        if (!w->listening) return vigil_error_set(err, VIGIL_ERR_IO, "http gate: epoll: %s", strerror(errno));
    }
    return VIGIL_OK;
}

uint16_t gate_port(const http_gate *gate) { return gate->port; }

/* Starts the workers; if one cannot start, those started stop again. */
vigil_status gate_start(http_gate *gate, vigil_error *err) {
    for (unsigned i = 0; i < gate->n_workers; i++) {
        int rc = pthread_create(&gate->workers[i].thread, NULL, worker_run, &gate->workers[i]);
        if (!rc) pthread_setname_np(gate->workers[i].thread, "http-gate");
        if (rc) {
            atomic_store(&gate->stop, 1);
            for (unsigned j = 0; j < i; j++) pthread_join(gate->workers[j].thread, NULL);
            for (unsigned j = 0; j < i; j++) gate->workers[j].started = 0;
            atomic_store(&gate->stop, 0);
            return vigil_error_set(err, VIGIL_ERR_IO, "http gate: cannot start its threads: %s", strerror(rc));
        }
        gate->workers[i].started = 1;
    }
    gate->started = 1;
    return VIGIL_OK;
}

static void worker_wake(gate_worker *w) {
    uint64_t one = 1;
    if (write(w->wake_fd, &one, sizeof one) < 0) { /* the counter is full: the loop is awake anyway */
    }
}

void gate_stop_accepting(http_gate *gate) {
    if (!gate) return;
    atomic_store(&gate->stop_accepting, 1);
    if (gate->started) {
        for (unsigned i = 0; i < gate->n_workers; i++) worker_wake(&gate->workers[i]);
    } else {
        for (unsigned i = 0; i < gate->n_workers; i++) worker_release(&gate->workers[i]);
    }
}

int gate_body_take(http_gate *gate, int fd, char *buffer, size_t length, gate_body_done done, void *user) {
    if (!gate || !buffer || !length) return -1;
    gate_worker *w = NULL;
    pthread_mutex_lock(&gate->lock);
    gate_link *l = table_find_locked(gate, fd);
    if (l && !l->take_pending && !atomic_load(&gate->bodies_abort)) {
        l->take_pending = 1;
        l->take_buffer = buffer;
        l->take_length = length;
        l->take_done = done;
        l->take_user = user;
        w = l->worker;
        l->take_next = w->takes;
        w->takes = l;
        atomic_fetch_add(&gate->bodies, 1);
    }
    pthread_mutex_unlock(&gate->lock);
    if (!w) return -1;
    worker_wake(w);
    return 0;
}

void gate_bodies_abort(http_gate *gate, int wait_ms) {
    if (!gate) return;
    atomic_store(&gate->bodies_abort, 1);
    if (!gate->started) return;
    for (unsigned i = 0; i < gate->n_workers; i++) worker_wake(&gate->workers[i]);
    int64_t deadline = now_ns() + (int64_t)wait_ms * 1000000;
    while (atomic_load(&gate->bodies) > 0 && now_ns() < deadline) usleep(2000);
}

void gate_drain(http_gate *gate, int wait_ms) {
    if (!gate || !gate->started) return;
    int64_t deadline = now_ns() + (int64_t)wait_ms * 1000000;
    while (atomic_load(&gate->active) > 0 && now_ns() < deadline) usleep(5000);
}

void gate_destroy(http_gate *gate) {
    if (!gate) return;
    atomic_store(&gate->stop, 1);
    for (unsigned i = 0; gate->workers && i < gate->n_workers; i++)
        if (gate->workers[i].started) worker_wake(&gate->workers[i]);
    for (unsigned i = 0; gate->workers && i < gate->n_workers; i++) {
        gate_worker *w = &gate->workers[i];
        if (w->started) pthread_join(w->thread, NULL);
        w->started = 0;
    }
    for (unsigned i = 0; gate->workers && i < gate->n_workers; i++) {
        gate_worker *w = &gate->workers[i];
        while (w->links) link_close(w->links);
        worker_free_dead(w);
        if (w->epoll_fd >= 0) close(w->epoll_fd);
        if (w->wake_fd >= 0) close(w->wake_fd);
    }
    if (gate->listen_fd >= 0) close(gate->listen_fd);
    if (gate->cred) gnutls_certificate_free_credentials(gate->cred);
    vigil_free(gate->workers);
    vigil_free(gate->by_fd);
    pthread_mutex_destroy(&gate->lock);
    vigil_free(gate);
}
