/*
 * pull.c - `vigil models pull` (see pull.h): one libcurl transfer into a
 * temporary file, then checks, then an atomic rename.
 *
 * Why these pieces:
 * - S3 is spoken through libcurl's own SigV4 signer (CURLOPT_AWS_SIGV4), so
 *   no AWS SDK is needed.  libcurl 7.88 (Debian 12) does not send the
 *   x-amz-content-sha256 header that S3 requires on signed requests, so we
 *   add it: the SHA-256 of the empty body of a GET, which is also the
 *   payload hash curl puts in the canonical request, so both agree.  Every
 *   header we add is signed (curl signs the request's x-amz-* headers).
 * - The body streams to disk while it is hashed and counted, so a model of
 *   any size costs a fixed amount of memory, and the size cap stops a
 *   runaway body early (CURLOPT_MAXFILESIZE refuses an announced one before
 *   a byte is written).
 * - An error answer (HTTP >= 300 after redirects) never reaches the file:
 *   its first bytes are kept instead, so S3's <Code> (AccessDenied,
 *   SignatureDoesNotMatch, NoSuchKey) can be quoted in the one-line error.
 * - The temporary file is a dot file in the destination folder (the same
 *   file system, so rename(2) is atomic; `vigil serve` ignores names that
 *   are not model.onnx), fsynced before the rename and the folder after.
 */
#include "cli/pull.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/onnx.h"
#include "serve/repository.h"

#define PULL_MODEL_FILE "model.onnx" /* what a version folder holds (the CPU backend's file) */
#define PULL_ERROR_BODY_MAX 2048     /* bytes of an error answer kept for the message */
#define PULL_CONNECT_TIMEOUT_S 30L   /* bound on connecting, within the whole timeout */
#define PULL_PATH_MAX 4096
/* SHA-256 of zero bytes: the payload hash of a GET (see the design note). */
#define PULL_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ------------------------------------------------------------ naming */

static bool pull_is_number(const char *s, size_t len) {
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

/* Creates every missing folder of path (mkdir -p); 0 or an errno.
 * *created_from is the length of the first prefix of path it created
 * (strlen(path) + 1 when none), for pull_remove_created. */
static int pull_mkdirs(const char *path, size_t *created_from) {
    char buf[PULL_PATH_MAX];
    size_t len = strlen(path);
    *created_from = len + 1;
    if (len == 0 || len >= sizeof buf) return ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) == 0) {
            if (*created_from > len) *created_from = i;
        } else if (errno != EEXIST) {
            return errno;
        }
        buf[i] = saved;
    }
    return 0;
}

/* Removes the folders pull_mkdirs created (deepest first), so a failed pull
 * leaves no empty model folder for a polling `vigil serve` to puzzle over. */
static void pull_remove_created(const char *path, size_t created_from) {
    char buf[PULL_PATH_MAX];
    size_t len = strlen(path);
    if (created_from > len || len >= sizeof buf) return;
    memcpy(buf, path, len + 1);
    while (len >= created_from) {
        buf[len] = '\0';
        if (rmdir(buf) != 0) return;
        while (len > 0 && buf[len - 1] != '/')
            len--;
        if (len == 0) return;
        len--; /* the '/' before the removed component */
    }
}

/* The model name a repository destination gets: the source's last path
 * component (query dropped) without ".onnx". */
static vigil_status pull_source_name(const char *source, char *name, size_t size, vigil_error *err) {
    const char *end = source + strcspn(source, "?#");
    const char *start = end;
    while (start > source && start[-1] != '/')
        start--;
    size_t len = (size_t)(end - start);
    if (len > 5 && strncmp(end - 5, ".onnx", 5) == 0) len -= 5;
    if (len == 0 || len >= size)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "cannot name the model after '%s': give a version folder (DIR/NAME/1/)", source);
    memcpy(name, start, len);
    name[len] = '\0';
    vigil_error name_err;
    if (repository_check_name(name, &name_err) != VIGIL_OK)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "'%s' is not a model name (%s): give a version folder (DIR/NAME/1/)", name,
                               name_err.message);
    return VIGIL_OK;
}

vigil_status pull_resolve_dest(const char *source, const char *dest, char *out, size_t size, vigil_error *err) {
    size_t len = strlen(dest);
    while (len > 1 && dest[len - 1] == '/')
        len--; /* "DIR/" names DIR */
    bool trailing_slash = len < strlen(dest);
    const char *last = dest + len;
    while (last > dest && last[-1] != '/')
        last--;
    size_t last_len = (size_t)(dest + len - last);
    struct stat st;
    bool is_dir = stat(dest, &st) == 0 && S_ISDIR(st.st_mode);
    int n;
    if (pull_is_number(last, last_len)) {
        n = snprintf(out, size, "%.*s/" PULL_MODEL_FILE, (int)len, dest);
    } else if (is_dir || trailing_slash) {
        char name[MODEL_NAME_MAX];
        vigil_status s = pull_source_name(source, name, sizeof name, err);
        if (s != VIGIL_OK) return s;
        n = snprintf(out, size, "%.*s/%s/1/" PULL_MODEL_FILE, (int)len, dest, name);
    } else {
        n = snprintf(out, size, "%s", dest);
    }
    if (n < 0 || (size_t)n >= size) return vigil_error_set(err, VIGIL_ERR_LIMIT, "destination path too long");
    return VIGIL_OK;
}

/* Appends s to out percent-encoded as S3 expects in a path: everything but
 * RFC 3986's unreserved characters and (when keep_slash) '/'. */
static bool pull_append_encoded(char *out, size_t size, size_t *used, const char *s, bool keep_slash) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                     *p == '_' || *p == '.' || *p == '~' || (keep_slash && *p == '/');
        if (*used + (plain ? 1 : 3) >= size) return false;
        if (plain) {
            out[(*used)++] = (char)*p;
        } else {
            out[(*used)++] = '%';
            out[(*used)++] = hex[*p >> 4];
            out[(*used)++] = hex[*p & 15];
        }
    }
    out[*used] = '\0';
    return true;
}

vigil_status pull_s3_url(const char *source, const pull_s3_config *s3, char *out, size_t size, vigil_error *err) {
    if (strncmp(source, "s3://", 5) != 0)
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "'%s' is not an s3:// source", source);
    const char *bucket = source + 5, *slash = strchr(bucket, '/');
    size_t bucket_len = slash ? (size_t)(slash - bucket) : 0;
    if (!slash || bucket_len < 3 || bucket_len > 63 || slash[1] == '\0')
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "'%s': expected s3://BUCKET/KEY", source);
    for (size_t i = 0; i < bucket_len; i++) {
        char c = bucket[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "'%.*s' is not an S3 bucket name (lower-case letters, digits, '-', '.')",
                                   (int)bucket_len, bucket);
    }
    const char *region = s3->region && *s3->region ? s3->region : "us-east-1";
    int n;
    if (s3->endpoint && *s3->endpoint) {
        size_t elen = strlen(s3->endpoint);
        while (elen > 0 && s3->endpoint[elen - 1] == '/')
            elen--;
        n = snprintf(out, size, "%.*s/%.*s/", (int)elen, s3->endpoint, (int)bucket_len, bucket);
    } else {
        n = snprintf(out, size, "https://%.*s.s3.%s.amazonaws.com/", (int)bucket_len, bucket, region);
    }
    size_t used = n > 0 ? (size_t)n : 0;
    if (n < 0 || used >= size || !pull_append_encoded(out, size, &used, slash + 1, true))
        return vigil_error_set(err, VIGIL_ERR_LIMIT, "'%s': URL too long", source);
    return VIGIL_OK;
}

/* ------------------------------------------------------------ transfer */

typedef struct pull_transfer {
    CURL *curl;
    int fd;                   /* the temporary file */
    EVP_MD_CTX *sha;          /* running SHA-256 of the body */
    int64_t bytes, max_bytes; /* written so far, cap */
    bool over_limit, write_failed;
    int write_errno;
    char error_body[PULL_ERROR_BODY_MAX + 1]; /* start of an error answer */
    size_t error_len;
    volatile sig_atomic_t *stop;
} pull_transfer;

static size_t pull_on_body(char *data, size_t size, size_t count, void *userdata) {
    pull_transfer *t = userdata;
    size_t len = size * count;
    long code = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 300) { /* an error answer: keep its start for the message */
        size_t room = PULL_ERROR_BODY_MAX - t->error_len, take = len < room ? len : room;
        memcpy(t->error_body + t->error_len, data, take);
        t->error_len += take;
        t->error_body[t->error_len] = '\0';
        return len;
    }
    if (t->bytes + (int64_t)len > t->max_bytes) {
        t->over_limit = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    if (EVP_DigestUpdate(t->sha, data, len) != 1) {
        t->write_failed = true;
        return 0;
    }
    for (size_t done = 0; done < len;) {
        ssize_t w = write(t->fd, data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            t->write_failed = true;
            t->write_errno = w < 0 ? errno : ENOSPC;
            return 0;
        }
        done += (size_t)w;
    }
    t->bytes += (int64_t)len;
    return len;
}

static int pull_on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                            curl_off_t ulnow) {
    const pull_transfer *t = userdata;
    return t->stop && *t->stop; /* non-zero aborts the transfer */
}

/* The text between <tag> and </tag> in an S3 error document, or NULL. */
static const char *pull_xml_field(const char *xml, const char *tag, char *out, size_t size) {
    char open[32], close[32];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *start = strstr(xml, open), *end;
    if (!start || !(end = strstr(start += strlen(open), close))) return NULL;
    size_t len = (size_t)(end - start) < size - 1 ? (size_t)(end - start) : size - 1;
    memcpy(out, start, len);
    out[len] = '\0';
    return out;
}

/* One line for an HTTP error answer: status, and S3's code and message. */
static vigil_status pull_http_error(const pull_transfer *t, long code, const char *url, vigil_error *err) {
    char s3_code[64], s3_message[200], detail[300] = "";
    if (pull_xml_field(t->error_body, "Code", s3_code, sizeof s3_code)) {
        const char *message = pull_xml_field(t->error_body, "Message", s3_message, sizeof s3_message);
        snprintf(detail, sizeof detail, ": %s%s%s", s3_code, message ? ": " : "", message ? message : "");
    }
    vigil_status status = code == 404   ? VIGIL_ERR_NOT_FOUND
                          : code == 401 ? VIGIL_ERR_UNAUTHENTICATED
                          : code == 403 ? VIGIL_ERR_PERMISSION
                                        : VIGIL_ERR_IO;
    const char *hint = code == 404                  ? " (not found)"
                       : code == 401 || code == 403 ? " (access denied: check the URL and the AWS_* credentials)"
                                                    : "";
    return vigil_error_set(err, status, "%s: HTTP %ld%s%s", url, code, hint, detail);
}

/* Words a failed transfer; t's flags explain write errors that curl only
 * sees as CURLE_WRITE_ERROR. */
static vigil_status pull_curl_error(const pull_transfer *t, CURLcode rc, const char *curl_message, long timeout_s,
                                    const char *url, vigil_error *err) {
    if (t->stop && *t->stop) return vigil_error_set(err, VIGIL_ERR_UNAVAILABLE, "%s: interrupted", url);
    if (t->over_limit || rc == CURLE_FILESIZE_EXCEEDED)
        return vigil_error_set(err, VIGIL_ERR_LIMIT, "%s: larger than the limit of %lld bytes (--max-bytes)", url,
                               (long long)t->max_bytes);
    if (t->write_failed)
        return vigil_error_set(err, VIGIL_ERR_IO, "%s: cannot write the download: %s", url,
                               strerror(t->write_errno ? t->write_errno : EIO));
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return vigil_error_set(err, VIGIL_ERR_TIMEOUT, "%s: timed out after %ld s (--timeout)", url, timeout_s);
    if (rc == CURLE_PARTIAL_FILE) {
        curl_off_t expected = -1;
        curl_easy_getinfo(t->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &expected);
        return vigil_error_set(err, VIGIL_ERR_IO, "%s: truncated: the connection closed after %lld of %lld bytes", url,
                               (long long)t->bytes, (long long)expected);
    }
    return vigil_error_set(err, VIGIL_ERR_IO, "%s: %s", url, curl_message[0] ? curl_message : curl_easy_strerror(rc));
}

/* Runs the transfer of url into t; credentials signed for s3 when given. */
static vigil_status pull_fetch(pull_transfer *t, const pull_options *opt, const char *url, bool s3, vigil_error *err) {
    char curl_message[CURL_ERROR_SIZE] = "", region_spec[128], token_header[4096];
    struct curl_slist *headers = NULL, *more;
    CURL *curl = t->curl;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_message);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT,
                     opt->timeout_s < PULL_CONNECT_TIMEOUT_S ? opt->timeout_s : PULL_CONNECT_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, opt->timeout_s);
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)opt->max_bytes);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "vigil-models-pull");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, pull_on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, pull_on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, t);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    bool signed_request = s3 && opt->s3.access_key_id && *opt->s3.access_key_id;
    if (signed_request) {
        if (!opt->s3.secret_access_key || !*opt->s3.secret_access_key)
            return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                                   "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
        snprintf(region_spec, sizeof region_spec, "aws:amz:%s:s3",
                 opt->s3.region && *opt->s3.region ? opt->s3.region : "us-east-1");
        curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, region_spec);
        curl_easy_setopt(curl, CURLOPT_USERNAME, opt->s3.access_key_id);
        curl_easy_setopt(curl, CURLOPT_PASSWORD, opt->s3.secret_access_key);
        if (!(more = curl_slist_append(headers, "x-amz-content-sha256: " PULL_EMPTY_SHA256)))
            return vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "out of memory");
        headers = more;
        if (opt->s3.session_token && *opt->s3.session_token) {
            int n = snprintf(token_header, sizeof token_header, "x-amz-security-token: %s", opt->s3.session_token);
            if (n < 0 || (size_t)n >= sizeof token_header || !(more = curl_slist_append(headers, token_header))) {
                curl_slist_free_all(headers);
                return vigil_error_set(err, VIGIL_ERR_LIMIT, "AWS_SESSION_TOKEN too long");
            }
            headers = more;
        }
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    }
    CURLcode rc = curl_easy_perform(curl);
    curl_slist_free_all(headers);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 300) return pull_http_error(t, code, url, err);
    if (rc != CURLE_OK) return pull_curl_error(t, rc, curl_message, opt->timeout_s, url, err);
    if (t->bytes == 0) return vigil_error_set(err, VIGIL_ERR_PARSE, "%s: empty answer (HTTP %ld)", url, code);
    return VIGIL_OK;
}

/* ------------------------------------------------------------ checks */

static vigil_status pull_check_sha256(EVP_MD_CTX *sha, const char *want, vigil_error *err) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(sha, digest, &len) != 1 || len != 32)
        return vigil_error_set(err, VIGIL_ERR_INTERNAL, "SHA-256 failed");
    if (!want) return VIGIL_OK;
    char got[65];
    for (unsigned int i = 0; i < len; i++)
        snprintf(got + 2 * i, 3, "%02x", digest[i]);
    if (strcasecmp(got, want) != 0)
        return vigil_error_set(err, VIGIL_ERR_PARSE, "SHA-256 mismatch: got %s, expected %s (--sha256)", got, want);
    return VIGIL_OK;
}

static vigil_status pull_check_onnx(const char *path, const char *source, vigil_error *err) {
    onnx_model *model = NULL;
    vigil_error load_err = {0};
    if (onnx_load_file(path, &model, &load_err) != VIGIL_OK)
        return vigil_error_set(err, VIGIL_ERR_PARSE, "%s is not a model vigil can load: %s", source, load_err.message);
    onnx_free(model);
    return VIGIL_OK;
}

/* Makes the rename durable: fsync of the folder that holds the new name. */
static void pull_sync_folder(const char *folder) {
    int fd = open(folder, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: the file itself is already on disk */
        close(fd);
    }
}

/* ------------------------------------------------------------ the whole pull */

vigil_status pull_model(const pull_options *opt, char *installed, size_t size, int64_t *bytes_out, vigil_error *err) {
    char url[PULL_PATH_MAX], file[PULL_PATH_MAX], folder[PULL_PATH_MAX], temp[PULL_PATH_MAX + 32];
    bool s3 = strncmp(opt->source, "s3://", 5) == 0;
    vigil_status s;
    if (s3) {
        if ((s = pull_s3_url(opt->source, &opt->s3, url, sizeof url, err)) != VIGIL_OK) return s;
    } else if (strncmp(opt->source, "http://", 7) == 0 || strncmp(opt->source, "https://", 8) == 0) {
        if (snprintf(url, sizeof url, "%s", opt->source) >= (int)sizeof url)
            return vigil_error_set(err, VIGIL_ERR_LIMIT, "source URL too long");
    } else {
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT,
                               "'%s': the source must be an http://, https:// or s3:// URL", opt->source);
    }
    if (opt->sha256_hex && (strlen(opt->sha256_hex) != 64 || strspn(opt->sha256_hex, "0123456789abcdefABCDEF") != 64))
        return vigil_error_set(err, VIGIL_ERR_INVALID_ARGUMENT, "--sha256 wants 64 hex digits");
    if ((s = pull_resolve_dest(opt->source, opt->dest, file, sizeof file, err)) != VIGIL_OK) return s;

    const char *base = strrchr(file, '/');
    size_t folder_len = base ? (size_t)(base - file) : 0;
    snprintf(folder, sizeof folder, "%.*s", (int)(folder_len ? folder_len : 1), base ? file : ".");
    if (!base)
        base = file;
    else
        base++;
    size_t created_from;
    int mk = pull_mkdirs(folder, &created_from);
    if (mk != 0) {
        pull_remove_created(folder, created_from);
        return vigil_error_set(err, VIGIL_ERR_IO, "cannot create %s: %s", folder, strerror(mk));
    }
    snprintf(temp, sizeof temp, "%s/.%s.pull-XXXXXX", folder, base);
    pull_transfer t = {.fd = mkstemp(temp), .max_bytes = opt->max_bytes, .stop = opt->stop};
    if (t.fd < 0) {
        s = vigil_error_set(err, VIGIL_ERR_IO, "cannot create a file in %s: %s", folder, strerror(errno));
        pull_remove_created(folder, created_from);
        return s;
    }
    (void)fchmod(t.fd, 0644); /* mkstemp's 0600 would hide the model from a serve running as another user */

    t.curl = curl_easy_init();
    t.sha = EVP_MD_CTX_new();
    if (!t.curl || !t.sha || EVP_DigestInit_ex(t.sha, EVP_sha256(), NULL) != 1)
        s = vigil_error_set(err, VIGIL_ERR_NO_MEMORY, "cannot start the transfer (out of memory)");
    else
        s = pull_fetch(&t, opt, url, s3, err);
    if (s == VIGIL_OK) s = pull_check_sha256(t.sha, opt->sha256_hex, err);
    if (s == VIGIL_OK && fsync(t.fd) != 0)
        s = vigil_error_set(err, VIGIL_ERR_IO, "cannot write %s: %s", temp, strerror(errno));
    if (close(t.fd) != 0 && s == VIGIL_OK)
        s = vigil_error_set(err, VIGIL_ERR_IO, "cannot write %s: %s", temp, strerror(errno));
    if (s == VIGIL_OK) s = pull_check_onnx(temp, opt->source, err);
    if (s == VIGIL_OK && rename(temp, file) != 0)
        s = vigil_error_set(err, VIGIL_ERR_IO, "cannot install %s: %s", file, strerror(errno));
    if (s != VIGIL_OK) {
        unlink(temp); /* never leave a partial file behind */
        pull_remove_created(folder, created_from);
    } else {
        pull_sync_folder(folder);
        snprintf(installed, size, "%s", file);
        *bytes_out = t.bytes;
    }
    EVP_MD_CTX_free(t.sha);
    if (t.curl) curl_easy_cleanup(t.curl);
    return s;
}
