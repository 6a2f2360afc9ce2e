/* Decoded images and image decoding.
 *
 * An acv_image is 8-bit, interleaved (HWC), with 1 (gray), 3 (RGB) or 4 (RGBA) channels.
 * Decoding honours EXIF orientation, refuses anything over the pixel limit before any
 * large allocation, and reports corrupt or truncated data as ACV_EFORMAT with a message
 * naming the source. */
#ifndef ACV_VISION_IMAGE_H
#define ACV_VISION_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct acv_image {
    int w, h, c;        /* c: 1, 3 or 4 */
    uint8_t *data;      /* h * w * c bytes, row-major, interleaved; owned */
} acv_image;

/* Default refusal limit: 100 megapixels (e.g. 10000 x 10000). */
#define ACV_IMAGE_MAX_PIXELS_DEFAULT (100LL * 1000 * 1000)

typedef struct acv_decode_opts {
    int want_c;             /* 0: as stored (1, 3 or 4); 1: gray; 3: RGB (alpha dropped) */
    int64_t max_pixels;     /* 0: ACV_IMAGE_MAX_PIXELS_DEFAULT */
    int apply_exif;         /* nonzero (default in acv_image_decode): rotate per EXIF */
} acv_decode_opts;

/* Decodes JPEG, PNG (8/16-bit, palette, gray, alpha) or BMP from memory; the format is
 * sniffed from the bytes, not the name. `what` names the source in error messages. */
int acv_image_decode(const uint8_t *buf, size_t len, const acv_decode_opts *opts, const char *what,
                     acv_image *out);
/* Reads and decodes a file (refusing files over 512 MiB). */
int acv_image_load(const char *path, const acv_decode_opts *opts, acv_image *out);
/* Allocates an image (data zeroed). */
int acv_image_alloc(acv_image *im, int w, int h, int c);
void acv_image_free(acv_image *im);
/* Writes PNG (1, 3 or 4 channels) / JPEG (1 or 3 channels, quality 1-100). */
int acv_image_save_png(const acv_image *im, const char *path);
int acv_image_save_jpeg(const acv_image *im, const char *path, int quality);
/* Encodes to a malloc'd buffer. */
int acv_image_encode_png(const acv_image *im, uint8_t **out, size_t *len);
int acv_image_encode_jpeg(const acv_image *im, int quality, uint8_t **out, size_t *len);

#endif
