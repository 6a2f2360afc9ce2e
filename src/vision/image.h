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
    int want_c;             /* 0: as stored (1, 3 or 4); 1: gray; 3: RGB (alpha dropped);
                               4: RGBA (opaque alpha added where absent) */
    int64_t max_pixels;     /* 0: ACV_IMAGE_MAX_PIXELS_DEFAULT */
    int apply_exif;         /* nonzero (default in acv_image_decode): rotate per EXIF */
} acv_decode_opts;

/* Decodes JPEG (8-bit baseline/progressive, Huffman/arithmetic; gray, RGB, CMYK/YCCK),
 * PNG (1-16 bit, palette, gray, alpha, interlaced; an APNG's first frame) or BMP (1/4/8-bit
 * palette incl. RLE, 16/24/32-bit, OS/2 1.x) from memory; the format is sniffed from the
 * bytes, not the name (docs/engine.md, "Image files", lists every variant). `what` names
 * the source in error messages (NULL: "image"). opts may be NULL (as stored, default
 * limit, EXIF applied). On success *out owns a new image (free with acv_image_free); on
 * failure *out is zeroed. Errors: ACV_EFORMAT (not an image, naming the format when the
 * bytes tell, e.g. WebP; corrupt; truncated: a JPEG warning about lost data counts as an
 * error, while a missing EOI marker or IEND chunk after complete pixels does not),
 * ACV_EUNSUPPORTED (12-bit or lossless JPEG, 2-bit BMP...), ACV_ERANGE (over max_pixels,
 * checked from the header before the pixel buffer is allocated), ACV_ENOMEM, ACV_EINVAL
 * (bad opts). */
int acv_image_decode(const uint8_t *buf, size_t len, const acv_decode_opts *opts, const char *what,
                     acv_image *out);
/* Reads and decodes a file (refusing files over 512 MiB). */
int acv_image_load(const char *path, const acv_decode_opts *opts, acv_image *out);
/* Allocates an image (data zeroed). */
int acv_image_alloc(acv_image *im, int w, int h, int c);
void acv_image_free(acv_image *im);
/* EXIF orientation (1-8) of a JPEG's APP1 Exif segment; 1 when absent or invalid. */
int acv_image_exif_orientation(const uint8_t *buf, size_t len);
/* Writes PNG (1, 3 or 4 channels) / JPEG (1 or 3 channels, 4 with alpha dropped;
 * quality 1-100, chroma 4:4:4 at quality >= 90, else 4:2:0). Writes are atomic. */
int acv_image_save_png(const acv_image *im, const char *path);
int acv_image_save_jpeg(const acv_image *im, const char *path, int quality);
/* Encodes to a malloc'd buffer (*out, caller frees). */
int acv_image_encode_png(const acv_image *im, uint8_t **out, size_t *len);
int acv_image_encode_jpeg(const acv_image *im, int quality, uint8_t **out, size_t *len);

#endif
