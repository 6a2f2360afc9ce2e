/* Image transforms (resize, convert, crop, letterbox, flip, rotate, orient) and training
 * augmentations (RandomResizedCrop, ColorJitter, RandomErasing, mixup, cutmix) following
 * the OpenCV / torchvision / timm definitions named in transform.h. */
#include "vision/transform.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"

static int check_src(const acv_image *im, const char *op)
{
    if (!im || !im->data || im->w <= 0 || im->h <= 0 || (im->c != 1 && im->c != 3 && im->c != 4))
        return acv_error(ACV_EINVAL, "%s: invalid source image (%dx%dx%d)", op, im ? im->w : 0, im ? im->h : 0,
                         im ? im->c : 0);
    return 0;
}

static int check_size(int w, int h, const char *op)
{
    if (w <= 0 || h <= 0) return acv_error(ACV_EINVAL, "%s: output size %dx%d must be positive", op, w, h);
    return 0;
}

static inline uint8_t clamp_u8(float v)
{
    if (!(v > 0.0f)) return 0;   /* also NaN */
    if (v >= 255.0f) return 255;
    return (uint8_t)(v + 0.5f);
}

/* ITU-R 601 luma in 14-bit fixed point (the coefficients sum to 16384). */
static inline uint8_t luma(const uint8_t *p) { return (uint8_t)((p[0] * 4899 + p[1] * 9617 + p[2] * 1868 + 8192) >> 14); }

/* ---- resize ---- */

static int resize_nearest(const acv_image *s, acv_image *d)
{
    int c = s->c;
    int *xs = malloc(sizeof(int) * (size_t)d->w);
    if (!xs) return acv_error(ACV_ENOMEM, "resize: out of memory");
    for (int x = 0; x < d->w; x++) {
        int sx = (int)(((int64_t)2 * x + 1) * s->w / (2 * (int64_t)d->w));
        xs[x] = sx < s->w ? sx : s->w - 1;
    }
    for (int y = 0; y < d->h; y++) {
        int sy = (int)(((int64_t)2 * y + 1) * s->h / (2 * (int64_t)d->h));
        if (sy >= s->h) sy = s->h - 1;
        const uint8_t *srow = s->data + (size_t)sy * s->w * c;
        uint8_t *drow = d->data + (size_t)y * d->w * c;
        for (int x = 0; x < d->w; x++) memcpy(drow + (size_t)x * c, srow + (size_t)xs[x] * c, (size_t)c);
    }
    free(xs);
    return 0;
}

/* OpenCV INTER_LINEAR coordinates: f = (d + 0.5) * scale - 0.5, clamped to the edges. */
static void linear_tab(int sn, int dn, int *i0, int *i1, float *a)
{
    double scale = (double)sn / dn;
    for (int d = 0; d < dn; d++) {
        double f = (d + 0.5) * scale - 0.5;
        int i = (int)floor(f);
        double t = f - i;
        if (i < 0) { i = 0; t = 0; }
        if (i >= sn - 1) { i = sn - 1; t = 0; }
        i0[d] = i;
        i1[d] = i + 1 < sn ? i + 1 : sn - 1;
        a[d] = (float)t;
    }
}

static int resize_bilinear(const acv_image *s, acv_image *d)
{
    int c = s->c;
    int *x0 = malloc(sizeof(int) * (size_t)d->w * 2), *y0 = malloc(sizeof(int) * (size_t)d->h * 2);
    float *ax = malloc(sizeof(float) * (size_t)d->w), *ay = malloc(sizeof(float) * (size_t)d->h);
    if (!x0 || !y0 || !ax || !ay) {
        free(x0); free(y0); free(ax); free(ay);
        return acv_error(ACV_ENOMEM, "resize: out of memory");
    }
    int *x1 = x0 + d->w, *y1 = y0 + d->h;
    linear_tab(s->w, d->w, x0, x1, ax);
    linear_tab(s->h, d->h, y0, y1, ay);
    for (int y = 0; y < d->h; y++) {
        const uint8_t *r0 = s->data + (size_t)y0[y] * s->w * c, *r1 = s->data + (size_t)y1[y] * s->w * c;
        float b = ay[y];
        uint8_t *drow = d->data + (size_t)y * d->w * c;
        for (int x = 0; x < d->w; x++) {
            float a = ax[x];
            const uint8_t *p00 = r0 + (size_t)x0[x] * c, *p01 = r0 + (size_t)x1[x] * c;
            const uint8_t *p10 = r1 + (size_t)x0[x] * c, *p11 = r1 + (size_t)x1[x] * c;
            for (int k = 0; k < c; k++) {
                float top = p00[k] + a * (p01[k] - p00[k]);
                float bot = p10[k] + a * (p11[k] - p10[k]);
                drow[(size_t)x * c + k] = clamp_u8(top + b * (bot - top));
            }
        }
    }
    free(x0); free(y0); free(ax); free(ay);
    return 0;
}

/* Box-filter weights: destination cell d covers source interval [d*s, (d+1)*s), s = sn/dn;
 * each source cell gets its overlap / s. Up to `stride` taps per destination cell. */
static void area_tab(int sn, int dn, int stride, int *start, int *count, float *wt)
{
    double s = (double)sn / dn;
    for (int d = 0; d < dn; d++) {
        double lo = d * s, hi = (d + 1) * s;
        if (hi > sn) hi = sn;
        int i0 = (int)floor(lo), n = 0;
        for (int i = i0; i < sn && i < hi && n < stride; i++) {
            double ov = fmin(hi, i + 1.0) - fmax(lo, (double)i);
            if (ov <= 1e-9) { if (n == 0) i0 = i + 1; continue; }
            wt[(size_t)d * stride + n++] = (float)(ov / s);
        }
        start[d] = i0 < sn ? i0 : sn - 1;
        count[d] = n;
    }
}

static int resize_area(const acv_image *s, acv_image *d)
{
    int c = s->c;
    int sx = (int)ceil((double)s->w / d->w) + 2, sy = (int)ceil((double)s->h / d->h) + 2;
    int *xs = malloc(sizeof(int) * (size_t)d->w * 2), *ys = malloc(sizeof(int) * (size_t)d->h * 2);
    float *xw = malloc(sizeof(float) * (size_t)d->w * sx), *yw = malloc(sizeof(float) * (size_t)d->h * sy);
    float *tmp = malloc(sizeof(float) * (size_t)s->h * d->w * c), *acc = malloc(sizeof(float) * (size_t)d->w * c);
    int rc = 0;
    if (!xs || !ys || !xw || !yw || !tmp || !acc) {
        rc = acv_error(ACV_ENOMEM, "resize: out of memory");
        goto done;
    }
    int *xn = xs + d->w, *yn = ys + d->h;
    area_tab(s->w, d->w, sx, xs, xn, xw);
    area_tab(s->h, d->h, sy, ys, yn, yw);
    /* Horizontal pass over every source row, then vertical pass. */
    for (int y = 0; y < s->h; y++) {
        const uint8_t *srow = s->data + (size_t)y * s->w * c;
        float *trow = tmp + (size_t)y * d->w * c;
        for (int x = 0; x < d->w; x++) {
            for (int k = 0; k < c; k++) trow[(size_t)x * c + k] = 0.0f;
            for (int t = 0; t < xn[x]; t++) {
                float w = xw[(size_t)x * sx + t];
                const uint8_t *p = srow + (size_t)(xs[x] + t) * c;
                for (int k = 0; k < c; k++) trow[(size_t)x * c + k] += w * p[k];
            }
        }
    }
    for (int y = 0; y < d->h; y++) {
        memset(acc, 0, sizeof(float) * (size_t)d->w * c);
        for (int t = 0; t < yn[y]; t++) {
            float w = yw[(size_t)y * sy + t];
            const float *trow = tmp + (size_t)(ys[y] + t) * d->w * c;
            for (size_t i = 0; i < (size_t)d->w * c; i++) acc[i] += w * trow[i];
        }
        uint8_t *drow = d->data + (size_t)y * d->w * c;
        for (size_t i = 0; i < (size_t)d->w * c; i++) drow[i] = clamp_u8(acc[i]);
    }
done:
    free(xs); free(ys); free(xw); free(yw); free(tmp); free(acc);
    return rc;
}

int acv_img_resize(const acv_image *src, int w, int h, int mode, acv_image *dst)
{
    int rc;
    memset(dst, 0, sizeof *dst);
    if ((rc = check_src(src, "resize")) || (rc = check_size(w, h, "resize"))) return rc;
    if (mode != ACV_RESIZE_NEAREST && mode != ACV_RESIZE_BILINEAR && mode != ACV_RESIZE_AREA)
        return acv_error(ACV_EINVAL, "resize: unknown mode %d", mode);
    if ((rc = acv_image_alloc(dst, w, h, src->c))) return rc;
    if (w == src->w && h == src->h) {
        memcpy(dst->data, src->data, (size_t)w * h * src->c);
        return 0;
    }
    if (mode == ACV_RESIZE_NEAREST) {
        rc = resize_nearest(src, dst);
    } else if (mode == ACV_RESIZE_BILINEAR) {
        rc = resize_bilinear(src, dst);
    } else {
        rc = resize_area(src, dst);
    }
    if (rc) acv_image_free(dst);
    return rc;
}

/* ---- channels, crops ---- */

int acv_img_convert(const acv_image *src, int c, acv_image *dst)
{
    int rc;
    memset(dst, 0, sizeof *dst);
    if ((rc = check_src(src, "convert"))) return rc;
    if (c != 1 && c != 3 && c != 4) return acv_error(ACV_EINVAL, "convert: cannot convert to %d channels", c);
    if ((rc = acv_image_alloc(dst, src->w, src->h, c))) return rc;
    size_t n = (size_t)src->w * src->h;
    int sc = src->c;
    const uint8_t *s = src->data;
    uint8_t *d = dst->data;
    if (sc == c) {
        memcpy(d, s, n * c);
        return 0;
    }
    for (size_t i = 0; i < n; i++, s += sc, d += c) {
        if (c == 1) {
            d[0] = luma(s);
        } else {
            if (sc == 1) d[0] = d[1] = d[2] = s[0];
            else { d[0] = s[0]; d[1] = s[1]; d[2] = s[2]; }
            if (c == 4) d[3] = 255;
        }
    }
    return 0;
}

int acv_img_crop(const acv_image *src, int x, int y, int w, int h, uint8_t fill, acv_image *dst)
{
    int rc;
    memset(dst, 0, sizeof *dst);
    if ((rc = check_src(src, "crop")) || (rc = check_size(w, h, "crop"))) return rc;
    if ((rc = acv_image_alloc(dst, w, h, src->c))) return rc;
    int c = src->c;
    int64_t x0 = x > 0 ? x : 0, y0 = y > 0 ? y : 0;
    int64_t x1 = (int64_t)x + w < src->w ? (int64_t)x + w : src->w;
    int64_t y1 = (int64_t)y + h < src->h ? (int64_t)y + h : src->h;
    int inside = x0 < x1 && y0 < y1;
    if (!inside || x0 != x || y0 != y || x1 - x0 != w || y1 - y0 != h) memset(dst->data, fill, (size_t)w * h * c);
    if (!inside) return 0;
    for (int64_t sy = y0; sy < y1; sy++)
        memcpy(dst->data + ((size_t)(sy - y) * w + (size_t)(x0 - x)) * c, src->data + ((size_t)sy * src->w + x0) * c,
               (size_t)(x1 - x0) * c);
    return 0;
}

/* torchvision offset: round-half-even of the centred offset, or -(slack // 2) when the
 * crop is larger (the image is padded on both sides first). */
static int center_offset(int size, int crop)
{
    if (crop <= size) return (int)nearbyint((size - crop) / 2.0);
    return -((crop - size) / 2);
}

int acv_img_center_crop(const acv_image *src, int w, int h, acv_image *dst)
{
    int rc;
    memset(dst, 0, sizeof *dst);
    if ((rc = check_src(src, "center crop")) || (rc = check_size(w, h, "center crop"))) return rc;
    return acv_img_crop(src, center_offset(src->w, w), center_offset(src->h, h), w, h, 0, dst);
}

/* Resizes with the area filter when shrinking in either direction, else bilinear. */
static int resize_auto(const acv_image *src, int w, int h, acv_image *dst)
{
    int mode = (w < src->w || h < src->h) ? ACV_RESIZE_AREA : ACV_RESIZE_BILINEAR;
    return acv_img_resize(src, w, h, mode, dst);
}

int acv_img_random_resized_crop(const acv_image *src, int w, int h, float scale_lo, float scale_hi,
                                float ratio_lo, float ratio_hi, acv_rng *rng, acv_image *dst)
{
    int rc;
    memset(dst, 0, sizeof *dst);
    if ((rc = check_src(src, "random resized crop")) || (rc = check_size(w, h, "random resized crop"))) return rc;
    if (!(scale_lo > 0 && scale_lo <= scale_hi && ratio_lo > 0 && ratio_lo <= ratio_hi))
        return acv_error(ACV_EINVAL, "random resized crop: need 0 < scale %g <= %g and 0 < ratio %g <= %g",
                         scale_lo, scale_hi, ratio_lo, ratio_hi);
    int W = src->w, H = src->h;
    double area = (double)W * H, lr0 = log(ratio_lo), lr1 = log(ratio_hi);
    int cw = 0, ch = 0, cx = 0, cy = 0, found = 0;
    for (int t = 0; t < 10 && !found; t++) {
        double target = area * (scale_lo + (scale_hi - scale_lo) * acv_rng_uniform(rng));
        double ar = exp(lr0 + (lr1 - lr0) * acv_rng_uniform(rng));
        int tw = (int)nearbyint(sqrt(target * ar)), th = (int)nearbyint(sqrt(target / ar));
        if (tw > 0 && tw <= W && th > 0 && th <= H) {
            cw = tw;
            ch = th;
            cy = (int)acv_rng_below(rng, (uint32_t)(H - th + 1));
            cx = (int)acv_rng_below(rng, (uint32_t)(W - tw + 1));
            found = 1;
        }
    }
    if (!found) {
        double in_ratio = (double)W / H;
        if (in_ratio < ratio_lo) {
            cw = W;
            ch = (int)nearbyint(cw / (double)ratio_lo);
        } else if (in_ratio > ratio_hi) {
            ch = H;
            cw = (int)nearbyint(ch * (double)ratio_hi);
        } else {
            cw = W;
            ch = H;
        }
        if (cw < 1) cw = 1;
        if (ch < 1) ch = 1;
        cy = (H - ch) / 2;
        cx = (W - cw) / 2;
    }
    acv_image crop;
    if ((rc = acv_img_crop(src, cx, cy, cw, ch, 0, &crop))) return rc;
    rc = resize_auto(&crop, w, h, dst);
    acv_image_free(&crop);
    return rc;
}

int acv_img_letterbox(const acv_image *src, int w, int h, uint8_t fill, acv_letterbox_info *info, acv_image *dst)
{
    int rc;
    memset(dst, 0, sizeof *dst);
    if ((rc = check_src(src, "letterbox")) || (rc = check_size(w, h, "letterbox"))) return rc;
    double sx = (double)w / src->w, sy = (double)h / src->h, s = sx < sy ? sx : sy;
    int nw = (int)nearbyint(src->w * s), nh = (int)nearbyint(src->h * s);
    nw = nw < 1 ? 1 : nw > w ? w : nw;
    nh = nh < 1 ? 1 : nh > h ? h : nh;
    int px = (w - nw) / 2, py = (h - nh) / 2;
    acv_image r;
    if ((rc = resize_auto(src, nw, nh, &r))) return rc;
    if ((rc = acv_image_alloc(dst, w, h, src->c))) {
        acv_image_free(&r);
        return rc;
    }
    int c = src->c;
    memset(dst->data, fill, (size_t)w * h * c);
    for (int y = 0; y < nh; y++)
        memcpy(dst->data + ((size_t)(y + py) * w + px) * c, r.data + (size_t)y * nw * c, (size_t)nw * c);
    acv_image_free(&r);
    if (info) {
        info->scale = (float)s;
        info->pad_x = px;
        info->pad_y = py;
    }
    return 0;
}

/* ---- geometry ---- */

void acv_img_flip_h(acv_image *im)
{
    int c = im->c;
    for (int y = 0; y < im->h; y++) {
        uint8_t *row = im->data + (size_t)y * im->w * c;
        for (int a = 0, b = im->w - 1; a < b; a++, b--)
            for (int k = 0; k < c; k++) {
                uint8_t t = row[(size_t)a * c + k];
                row[(size_t)a * c + k] = row[(size_t)b * c + k];
                row[(size_t)b * c + k] = t;
            }
    }
}

void acv_img_flip_v(acv_image *im)
{
    size_t rb = (size_t)im->w * im->c;
    for (int a = 0, b = im->h - 1; a < b; a++, b--) {
        uint8_t *ra = im->data + (size_t)a * rb, *rb_ = im->data + (size_t)b * rb;
        for (size_t i = 0; i < rb; i++) {
            uint8_t t = ra[i];
            ra[i] = rb_[i];
            rb_[i] = t;
        }
    }
}

int acv_img_rotate(const acv_image *src, float degrees, uint8_t fill, acv_image *dst)
{
    int rc;
    memset(dst, 0, sizeof *dst);
    if ((rc = check_src(src, "rotate"))) return rc;
    if (!isfinite(degrees)) return acv_error(ACV_EINVAL, "rotate: angle %g is not finite", degrees);
    if ((rc = acv_image_alloc(dst, src->w, src->h, src->c))) return rc;
    double deg = fmod((double)degrees, 360.0), cs, sn;
    if (deg < 0) deg += 360.0;
    if (deg == 0) { cs = 1; sn = 0; }
    else if (deg == 90) { cs = 0; sn = 1; }
    else if (deg == 180) { cs = -1; sn = 0; }
    else if (deg == 270) { cs = 0; sn = -1; }
    else { cs = cos(deg * M_PI / 180.0); sn = sin(deg * M_PI / 180.0); }
    int W = src->w, H = src->h, c = src->c;
    double cx = (W - 1) * 0.5, cy = (H - 1) * 0.5;
    for (int y = 0; y < H; y++) {
        uint8_t *drow = dst->data + (size_t)y * W * c;
        for (int x = 0; x < W; x++) {
            /* Inverse map: a counter-clockwise turn on screen (y down). */
            double dx = x - cx, dy = y - cy;
            double fx = cx + dx * cs - dy * sn, fy = cy + dx * sn + dy * cs;
            int x0 = (int)floor(fx), y0 = (int)floor(fy);
            float ax = (float)(fx - x0), ay = (float)(fy - y0);
            for (int k = 0; k < c; k++) {
                float v[2][2];
                for (int j = 0; j < 2; j++)
                    for (int i = 0; i < 2; i++) {
                        int xx = x0 + i, yy = y0 + j;
                        v[j][i] = (xx >= 0 && xx < W && yy >= 0 && yy < H) ? src->data[((size_t)yy * W + xx) * c + k]
                                                                             : fill;
                    }
                float top = v[0][0] + ax * (v[0][1] - v[0][0]);
                float bot = v[1][0] + ax * (v[1][1] - v[1][0]);
                drow[(size_t)x * c + k] = clamp_u8(top + ay * (bot - top));
            }
        }
    }
    return 0;
}

int acv_img_orient(const acv_image *src, int o, acv_image *dst)
{
    int rc;
    memset(dst, 0, sizeof *dst);
    if ((rc = check_src(src, "orient"))) return rc;
    if (o < 1 || o > 8) return acv_error(ACV_EINVAL, "orient: EXIF orientation %d is not 1-8", o);
    int W = src->w, H = src->h, c = src->c, swap = o >= 5;
    int dw = swap ? H : W, dh = swap ? W : H;
    if ((rc = acv_image_alloc(dst, dw, dh, c))) return rc;
    for (int y = 0; y < dh; y++) {
        uint8_t *drow = dst->data + (size_t)y * dw * c;
        for (int x = 0; x < dw; x++) {
            int sx, sy;
            switch (o) {
            case 1: sx = x; sy = y; break;
            case 2: sx = W - 1 - x; sy = y; break;
            case 3: sx = W - 1 - x; sy = H - 1 - y; break;
            case 4: sx = x; sy = H - 1 - y; break;
            case 5: sx = y; sy = x; break;
            case 6: sx = y; sy = H - 1 - x; break;
            case 7: sx = W - 1 - y; sy = H - 1 - x; break;
            default: sx = W - 1 - y; sy = x; break;
            }
            memcpy(drow + (size_t)x * c, src->data + ((size_t)sy * W + sx) * c, (size_t)c);
        }
    }
    return 0;
}

/* ---- colour ---- */

static void rgb_to_hsv(float r, float g, float b, float *h, float *s, float *v)
{
    float mx = fmaxf(r, fmaxf(g, b)), mn = fminf(r, fminf(g, b)), cr = mx - mn;
    *v = mx;
    *s = mx > 0 ? cr / mx : 0;
    if (cr <= 0) { *h = 0; return; }
    float hh;
    if (mx == r) hh = (g - b) / cr;
    else if (mx == g) hh = 2.0f + (b - r) / cr;
    else hh = 4.0f + (r - g) / cr;
    hh /= 6.0f;
    *h = hh - floorf(hh);
}

static void hsv_to_rgb(float h, float s, float v, float *r, float *g, float *b)
{
    float h6 = h * 6.0f;
    int i = (int)floorf(h6);
    float f = h6 - i;
    i = ((i % 6) + 6) % 6;
    float p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    switch (i) {
    case 0: *r = v; *g = t; *b = p; break;
    case 1: *r = q; *g = v; *b = p; break;
    case 2: *r = p; *g = v; *b = t; break;
    case 3: *r = p; *g = q; *b = v; break;
    case 4: *r = t; *g = p; *b = v; break;
    default: *r = v; *g = p; *b = q; break;
    }
}

static float draw_factor(acv_rng *rng, float v)
{
    float lo = 1.0f - v > 0 ? 1.0f - v : 0.0f, hi = 1.0f + v;
    return lo + (hi - lo) * acv_rng_uniform(rng);
}

int acv_img_color_jitter(acv_image *im, float brightness, float contrast, float saturation, float hue,
                         acv_rng *rng)
{
    int rc;
    if ((rc = check_src(im, "color jitter"))) return rc;
    if (!(brightness >= 0 && contrast >= 0 && saturation >= 0 && hue >= 0 && hue <= 0.5f))
        return acv_error(ACV_EINVAL, "color jitter: brightness %g, contrast %g, saturation %g must be >= 0 and "
                         "hue %g in [0, 0.5]", brightness, contrast, saturation, hue);
    int order[4] = {0, 1, 2, 3};
    acv_rng_shuffle(rng, order, 4);
    float fb = brightness > 0 ? draw_factor(rng, brightness) : 1.0f;
    float fc = contrast > 0 ? draw_factor(rng, contrast) : 1.0f;
    float fs = saturation > 0 ? draw_factor(rng, saturation) : 1.0f;
    float fh = hue > 0 ? -hue + 2.0f * hue * acv_rng_uniform(rng) : 0.0f;
    size_t n = (size_t)im->w * im->h;
    int c = im->c, nc = c == 1 ? 1 : 3;
    for (int step = 0; step < 4; step++) {
        uint8_t *p = im->data;
        switch (order[step]) {
        case 0:
            if (brightness <= 0) break;
            for (size_t i = 0; i < n; i++, p += c)
                for (int k = 0; k < nc; k++) p[k] = clamp_u8(p[k] * fb);
            break;
        case 1: {
            if (contrast <= 0) break;
            double sum = 0;
            for (size_t i = 0; i < n; i++, p += c) sum += nc == 1 ? p[0] : luma(p);
            float mean = (float)(sum / n);
            p = im->data;
            for (size_t i = 0; i < n; i++, p += c)
                for (int k = 0; k < nc; k++) p[k] = clamp_u8(fc * p[k] + (1 - fc) * mean);
            break;
        }
        case 2:
            if (saturation <= 0 || nc == 1) break;
            for (size_t i = 0; i < n; i++, p += c) {
                float g = luma(p);
                for (int k = 0; k < 3; k++) p[k] = clamp_u8(fs * p[k] + (1 - fs) * g);
            }
            break;
        default:
            if (hue <= 0 || nc == 1) break;
            for (size_t i = 0; i < n; i++, p += c) {
                float h, s, v, r, g, b;
                rgb_to_hsv(p[0] / 255.0f, p[1] / 255.0f, p[2] / 255.0f, &h, &s, &v);
                h += fh;
                h -= floorf(h);
                hsv_to_rgb(h, s, v, &r, &g, &b);
                p[0] = clamp_u8(r * 255.0f);
                p[1] = clamp_u8(g * 255.0f);
                p[2] = clamp_u8(b * 255.0f);
            }
            break;
        }
    }
    return 0;
}

/* ---- tensors and batches ---- */

void acv_img_to_tensor(const acv_image *im, float *out, const float *mean, const float *std)
{
    size_t n = (size_t)im->w * im->h;
    int c = im->c;
    for (int k = 0; k < c; k++) {
        float m = mean ? mean[k] : 0.0f, inv = std ? 1.0f / std[k] : 1.0f;
        float *o = out + (size_t)k * n;
        const uint8_t *p = im->data + k;
        for (size_t i = 0; i < n; i++, p += c) o[i] = (*p * (1.0f / 255.0f) - m) * inv;
    }
}

int acv_tensor_random_erasing(float *chw, int c, int h, int w, float p, float scale_lo, float scale_hi,
                              float ratio_lo, float ratio_hi, acv_rng *rng)
{
    ACV_ASSERT(c > 0 && h > 0 && w > 0 && scale_lo <= scale_hi && ratio_lo > 0 && ratio_lo <= ratio_hi);
    if (!(acv_rng_uniform(rng) < p)) return 0;
    double area = (double)h * w, lr0 = log(ratio_lo), lr1 = log(ratio_hi);
    for (int t = 0; t < 10; t++) {
        double ea = area * (scale_lo + (scale_hi - scale_lo) * acv_rng_uniform(rng));
        double ar = exp(lr0 + (lr1 - lr0) * acv_rng_uniform(rng));
        int eh = (int)nearbyint(sqrt(ea * ar)), ew = (int)nearbyint(sqrt(ea / ar));
        if (!(eh < h && ew < w) || eh <= 0 || ew <= 0) continue;
        int y0 = (int)acv_rng_below(rng, (uint32_t)(h - eh + 1));
        int x0 = (int)acv_rng_below(rng, (uint32_t)(w - ew + 1));
        for (int k = 0; k < c; k++)
            for (int y = y0; y < y0 + eh; y++)
                memset(chw + ((size_t)k * h + y) * w + x0, 0, sizeof(float) * (size_t)ew);
        return 1;
    }
    return 0;
}

/* Uniform in the open interval (0, 1), 53 bits. */
static double uniform_open(acv_rng *rng) { return ((acv_rng_u64(rng) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

/* log of a Gamma(a, 1) sample: Marsaglia-Tsang for a >= 1; for a < 1 the boost
 * G(a) = G(a + 1) * U^(1/a), kept in log space so tiny shapes do not underflow. */
static double log_gamma_sample(acv_rng *rng, double a)
{
    double boost = 0;
    if (a < 1) {
        boost = log(uniform_open(rng)) / a;
        a += 1;
    }
    double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = acv_rng_normal(rng);
            v = 1.0 + c * x;
        } while (v <= 0);
        v = v * v * v;
        double u = uniform_open(rng);
        if (u < 1.0 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return log(d * v) + boost;
    }
}

float acv_batch_sample_beta(acv_rng *rng, float a, float b)
{
    ACV_ASSERT(a > 0 && b > 0);
    double la = log_gamma_sample(rng, a), lb = log_gamma_sample(rng, b);
    return (float)(1.0 / (1.0 + exp(lb - la)));
}

/* t[i] = lam t[i] + (1 - lam) t[n-1-i] for all rows at once (pairs mixed together). */
static void mix_rows(float *t, int n, size_t len, float lam)
{
    for (int i = 0; i < n / 2; i++) {
        float *a = t + (size_t)i * len, *b = t + (size_t)(n - 1 - i) * len;
        for (size_t e = 0; e < len; e++) {
            float va = a[e], vb = b[e];
            a[e] = lam * va + (1 - lam) * vb;
            b[e] = lam * vb + (1 - lam) * va;
        }
    }
}

float acv_batch_mixup(float *x, float *targets, int n, int chw, int k, float alpha, acv_rng *rng)
{
    ACV_ASSERT(n > 0 && chw > 0);
    if (alpha <= 0) return 1.0f;
    float lam = acv_batch_sample_beta(rng, alpha, alpha);
    mix_rows(x, n, (size_t)chw, lam);
    if (targets && k > 0) mix_rows(targets, n, (size_t)k, lam);
    return lam;
}

float acv_batch_cutmix(float *x, float *targets, int n, int c, int h, int w, int k, float alpha, acv_rng *rng)
{
    ACV_ASSERT(n > 0 && c > 0 && h > 0 && w > 0);
    if (alpha <= 0) return 1.0f;
    float lam = acv_batch_sample_beta(rng, alpha, alpha);
    double ratio = sqrt(1.0 - lam);
    int cut_h = (int)(h * ratio), cut_w = (int)(w * ratio);
    int cy = (int)acv_rng_below(rng, (uint32_t)h), cx = (int)acv_rng_below(rng, (uint32_t)w);
    int yl = cy - cut_h / 2, yh = cy + cut_h / 2, xl = cx - cut_w / 2, xh = cx + cut_w / 2;
    yl = yl < 0 ? 0 : yl; yh = yh > h ? h : yh;
    xl = xl < 0 ? 0 : xl; xh = xh > w ? w : xh;
    size_t chw = (size_t)c * h * w;
    for (int i = 0; i < n / 2; i++) {
        float *a = x + (size_t)i * chw, *b = x + (size_t)(n - 1 - i) * chw;
        for (int ch = 0; ch < c; ch++)
            for (int y = yl; y < yh; y++)
                for (int xx = xl; xx < xh; xx++) {
                    size_t o = ((size_t)ch * h + y) * w + xx;
                    float t = a[o];
                    a[o] = b[o];
                    b[o] = t;
                }
    }
    lam = (float)(1.0 - (double)(yh - yl) * (xh - xl) / ((double)h * w));
    if (targets && k > 0) mix_rows(targets, n, (size_t)k, lam);
    return lam;
}
