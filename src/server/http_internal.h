/* Internals shared by http.c (daemon, request lifecycle, bodies) and http_response.c. */
#ifndef ACV_SERVER_HTTP_INTERNAL_H
#define ACV_SERVER_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <stdatomic.h>

#include "server/http.h"

struct acv_http {
    struct MHD_Daemon *d;
    char *tmp_dir;
    uint64_t max_upload;
    size_t max_json;
    bool access_log;
    acv_http_hooks hooks;
    void *ud;
    int port;
    char url[160];
    atomic_bool stopping;
};

typedef struct upfile {
    acv_http_file pub;
    char *field, *filename, *ctype, *path;
    int fd;
    uint8_t *mem;  /* the bytes while kept in memory (no file yet) */
    size_t mcap;
} upfile;

typedef struct formfield {
    char *name;
    char *value;
    size_t len;
} formfield;

typedef struct hdr {
    char *name, *value;
} hdr;

struct acv_http_req {
    acv_http *h;
    struct MHD_Connection *conn;
    char *method, *path, *ctype;
    char client[64];
    double t0;

    /* body */
    acv_http_body_kind kind;
    uint64_t declared;  /* Content-Length, or UINT64_MAX when unknown (chunked) */
    uint64_t received;
    uint64_t limit;
    uint64_t mem_budget, mem_used; /* bytes of file parts kept in memory (acv_http_keep_in_memory) */
    bool discard;       /* drop the rest of the body (a response is pending) */
    char *jbuf;
    size_t jlen, jcap;
    json_t *json;
    upfile raw;
    struct MHD_PostProcessor *pp;
    upfile *files;
    int nfiles, capfiles;
    int cur;            /* index of the file part being written, -1 none */
    formfield *fields;
    int nfields, capfields;
    size_t field_bytes;
    int body_error;     /* HTTP status for a body failure found inside the post processor */
    char body_msg[256];

    /* response */
    struct MHD_Response *resp; /* pending until the access handler may queue it */
    int status;
    uint64_t resp_bytes;
    bool queued;
    hdr *hdrs;
    int nhdrs;
    void *stream_ctx;

    void *udata;
    char log_user[72];
};

/* Builds the pending response from a finished MHD response (applies added headers). */
int acv__http_set_response(acv_http_req *r, int status, struct MHD_Response *resp, uint64_t bytes);
void acv__http_free_headers(acv_http_req *r);

#endif
