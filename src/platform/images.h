/* Images of a project: checked, stored once (blob store), listed and filtered.
 *
 * Storing an image is two steps so that many files can be checked outside the write lock
 * and committed together:
 *   1. acv_image_stage: hashes the file, finds the project's image with the same bytes, or
 *      decodes it fully (JPEG, PNG, BMP; EXIF orientation; the 100-megapixel limit), makes a
 *      JPEG thumbnail (longest side at most ACV_IMAGE_THUMB_SIDE) and stores both in a blob
 *      batch;
 *   2. acv_image_add inside a transaction: the `images` row and the blob references (or the
 *      existing image when the project already has these bytes).
 * Width and height are those of the image as displayed (after EXIF orientation), the frame
 * annotation coordinates refer to; the stored file is the original, byte for byte.
 *
 * An image as the API shows it: {"id","project_id","filename","format" ("jpeg"|"png"|"bmp"),
 * "width","height","channels","size","hash" (SHA-256 of the file),"thumb_hash","source"
 * ("upload"|"import"),"import_id","uploaded_by","created_at"}. */
#ifndef ACV_PLATFORM_IMAGES_H
#define ACV_PLATFORM_IMAGES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "platform/auth.h"
#include "platform/blobs.h"
#include "platform/db.h"

#define ACV_IMAGE_THUMB_SIDE 256
#define ACV_IMAGE_FILE_MAX (512LL << 20) /* bytes in one image file */
#define ACV_IMAGE_NAME_MAX 255           /* bytes kept of a file name */

typedef struct acv_image_staged {
    char hash[65];           /* SHA-256 of the file */
    char thumb_hash[65];     /* the thumbnail's blob ("" when the image already existed) */
    int64_t size, thumb_size;
    int width, height, channels;
    const char *format;      /* "jpeg", "png", "bmp" (static); NULL when the image existed */
    int64_t existing_id;     /* the project's image with these bytes, 0 when new */
} acv_image_staged;

/* Checks the image file at path (a temporary file this call consumes: moved into the blob
 * store or removed, success or not) and stages it for project_id as described above. name
 * (the client's file name) is used in error messages. Errors: ACV_EFORMAT (empty, not a
 * JPEG/PNG/BMP, corrupt or truncated), ACV_ERANGE (over ACV_IMAGE_FILE_MAX bytes or the
 * pixel limit), ACV_EUNSUPPORTED (a variant the decoder does not read), ACV_EIO. */
int acv_image_stage(acv_blob_batch *t, acv_dbconn *c, int64_t project_id, const char *path, const char *name,
                    acv_image_staged *out);

/* Inside the caller's transaction: adds a staged image to the project (source "upload" or
 * "import"; import_id 0 for none), taking blob references, or finds the project's image with
 * the same bytes (*existed true). filename is cleaned (directories, control characters) and
 * cut to ACV_IMAGE_NAME_MAX bytes. Not audited (callers write one entry per request). */
int acv_image_add(acv_dbconn *c, const acv_principal *who, int64_t project_id, const acv_image_staged *st,
                  const char *filename, const char *source, int64_t import_id, int64_t *id, bool *existed);

/* Commits staged uploads in one transaction with one audit entry; *images (new reference)
 * holds the image objects in order, each with "duplicate": true when the project already had
 * the bytes (or an earlier file of the same request did). */
int acv_image_commit_uploads(acv_dbconn *c, const acv_principal *who, int64_t project_id,
                             const acv_image_staged *st, const char *const *filenames, int n, json_t **images);

/* One image; with_annotations adds "annotations": [{set_id, set_name, task, status,
 * revision, annotated_by, updated_at}] for every annotation set that holds it. */
int acv_image_get(acv_dbconn *c, int64_t id, bool with_annotations, json_t **out);
int acv_image_project(acv_dbconn *c, int64_t id, int64_t *project_id);

/* List filters; zero / NULL = any. The annotation filters (set_id, status, label,
 * annotated_by) select images with an annotation item that meets all of them at once: in set
 * set_id (any set of the project when 0), with that status, whose document has label among
 * its tags or shape labels, annotated by that user. since/until: "YYYY-MM-DD" or
 * "YYYY-MM-DDTHH:MM:SSZ", compared with created_at (both bounds inclusive; a date covers its
 * whole day). q: file name contains (case-insensitive ASCII). after_id: keyset paging, ids
 * above it only. */
typedef struct acv_image_filter {
    int64_t set_id, annotated_by, after_id;
    const char *status, *label, *since, *until, *q;
} acv_image_filter;

/* Images of a project by id. *total counts all matches (ignoring after_id, limit, offset).
 * Bad filter values are ACV_EFORMAT (syntax) or ACV_EINVAL (a set of another project). */
int acv_image_list(acv_dbconn *c, int64_t project_id, const acv_image_filter *f, int limit, int offset,
                   json_t **items, int64_t *total);

/* Deletes an image (its annotation items and reviews go with it), drops its blob references
 * and removes blob files nothing refers to any more. Audited. */
int acv_image_delete(acv_dbconn *c, acv_blobs *b, const acv_principal *who, int64_t id);

/* The MIME type of a format name ("jpeg" -> "image/jpeg"); "application/octet-stream" for
 * anything else. */
const char *acv_image_mime(const char *format);
/* The format of image bytes from their first bytes ("jpeg", "png", "bmp"), or NULL. */
const char *acv_image_sniff(const uint8_t *buf, size_t len);
/* Cleans a client's file name into out (see acv_image_add): valid UTF-8 (other bytes become
 * '_'), no directories or control characters, at most ACV_IMAGE_NAME_MAX bytes; "" stays "". */
void acv_image_clean_name(const char *name, char out[ACV_IMAGE_NAME_MAX + 1]);
/* Replaces the bytes of s that are not valid UTF-8 with '_' (in place). */
void acv_utf8_fix(char *s);

#endif
