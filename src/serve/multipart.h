/*
 * multipart.h - finds one field of a multipart/form-data body (RFC 7578),
 * as browsers and `curl -F image=@bus.jpg` send it.  No copies: the result
 * points into the body.
 */
#ifndef VIGIL_SERVE_MULTIPART_H
#define VIGIL_SERVE_MULTIPART_H

#include <stddef.h>

#include "vigil/status.h"

/* content_type is the request's Content-Type header (it carries the
 * boundary).  VIGIL_ERR_NOT_FOUND when no part is named field,
 * VIGIL_ERR_PARSE when the body is not well-formed. */
vigil_status multipart_find(const char *content_type, const char *body, size_t len, const char *field,
                            const char **data, size_t *size, vigil_error *err);

#endif
