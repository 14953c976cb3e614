/*
 * mqtt_out.c - the streams' events on MQTT (mqtt_out.h).
 *
 * A plain publisher: libmosquitto's own network thread (mosquitto_loop_start)
 * connects, reconnects (0.5 s doubling to 2 s, so a shutdown waits at most
 * that) and sends; the delivery threads of the streams only queue a
 * message (mosquitto_publish does not wait for the network).  The edge's
 * link monitor runs its own poll loop for reasons that matter to it (a
 * state machine, credentials that change); a publisher of events needs
 * none of that.  MQTT 3.1.1, clean session: the durable record is the
 * REST ring, not the broker.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mosquitto.h>

#include "core/alloc.h"
#include "core/log.h"
#include "serve/textbuf.h"
#include "stream/mqtt_out.h"

struct stream_mqtt {
    struct mosquitto *mosq;
    char prefix[64];
    atomic_ullong published, dropped;
    int loop_started;
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static void lib_init(void) { mosquitto_lib_init(); } /* once per process, never undone (as link.c) */

vigil_status stream_mqtt_create(const stream_mqtt_config *cfg, stream_mqtt **out, vigil_error *err) {
    *out = NULL;
    pthread_once(&lib_once, lib_init);
    stream_mqtt *m = vigil_calloc(1, sizeof *m);
    if (!m) return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
    snprintf(m->prefix, sizeof m->prefix, "%s", cfg->prefix && cfg->prefix[0] ? cfg->prefix : "vigil");
    char client_id[64], host[32] = "vigil";
    gethostname(host, sizeof host - 1);
    snprintf(client_id, sizeof client_id, "vigil-streams-%.24s-%ld", host, (long)getpid());
    m->mosq = mosquitto_new(client_id, true, m);
    int rc = m->mosq ? MOSQ_ERR_SUCCESS : MOSQ_ERR_NOMEM;
    if (rc == MOSQ_ERR_SUCCESS && cfg->username) rc = mosquitto_username_pw_set(m->mosq, cfg->username, cfg->password);
    if (rc == MOSQ_ERR_SUCCESS && cfg->ca_file) rc = mosquitto_tls_set(m->mosq, cfg->ca_file, NULL, NULL, NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_reconnect_delay_set(m->mosq, 1, 2, true);
    int port = cfg->port > 0 ? cfg->port : (cfg->ca_file ? 8883 : 1883);
    if (rc == MOSQ_ERR_SUCCESS) {
        int connect_rc = mosquitto_connect_async(m->mosq, cfg->host, port, 30);
        if (connect_rc != MOSQ_ERR_SUCCESS)
            LOG_W("streams: MQTT broker %s:%d: %s (retrying in the background)", cfg->host, port,
                  mosquitto_strerror(connect_rc));
        rc = mosquitto_loop_start(m->mosq);
        m->loop_started = rc == MOSQ_ERR_SUCCESS;
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "streams: MQTT %s:%d: %s", cfg->host, port,
                        mosquitto_strerror(rc));
        stream_mqtt_destroy(m);
        return err->status;
    }
    LOG_I("streams: events on MQTT %s:%d, topics %s/streams/<name>/events", cfg->host, port, m->prefix);
    *out = m;
    return VIGIL_OK;
}

void stream_mqtt_destroy(stream_mqtt *m) {
    if (!m) return;
    if (m->mosq) {
        mosquitto_disconnect(m->mosq);
        if (m->loop_started) mosquitto_loop_stop(m->mosq, true);
        mosquitto_destroy(m->mosq);
    }
    vigil_free(m);
}

void stream_mqtt_sink(void *ctx, const stream_event_out *event) {
    stream_mqtt *m = ctx;
    char topic[256];
    snprintf(topic, sizeof topic, "%s/streams/%s/events", m->prefix, event->stream);
    int rc = mosquitto_publish(m->mosq, NULL, topic, (int)event->json_len, event->json, 1, false);
    if (rc == MOSQ_ERR_SUCCESS) atomic_fetch_add(&m->published, 1);
    else atomic_fetch_add(&m->dropped, 1);
}

void stream_mqtt_metrics(void *ctx, textbuf *out) {
    stream_mqtt *m = ctx;
    textbuf_printf(out,
                   "# HELP vigil_stream_mqtt_messages_total Stream events published on MQTT, or dropped while the "
                   "broker was away.\n"
                   "# TYPE vigil_stream_mqtt_messages_total counter\n"
                   "vigil_stream_mqtt_messages_total{result=\"published\"} %llu\n"
                   "vigil_stream_mqtt_messages_total{result=\"dropped\"} %llu\n",
                   (unsigned long long)atomic_load(&m->published), (unsigned long long)atomic_load(&m->dropped));
}
