/* Box-aware detection augmentation (see det_transform.h): letterbox, long-side resize,
 * mosaic, random affine warps with YOLO's box candidate filter, flips and HSV jitter. */
#include "vision/det_transform.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"

void acv_det_aug_opts_default(acv_det_aug_opts *o)
{
    memset(o, 0, sizeof *o);
    o->mosaic = 1.0f;
    o->degrees = 0.0f;
    o->translate = 0.1f;
    o->scale = 0.5f;
    o->shear = 0.0f;
    o->fliplr = 0.5f;
    o->flipud = 0.0f;
    o->hsv_h = 0.015f;
    o->hsv_s = 0.7f;
    o->hsv_v = 0.4f;
    o->min_side = 2.0f;
    o->min_area_frac = 0.1f;
    o->max_aspect = 100.0f;
}

int acv_det_aug_opts_check(const acv_det_aug_opts *o)
{
#define BAD(...) return acv_error(ACV_EINVAL, "detection augmentation: " __VA_ARGS__)
#define PROB(f) if (!(o->f >= 0.0f && o->f <= 1.0f)) BAD(#f " %g not in [0, 1]", (double)o->f)
    PROB(mosaic);
    PROB(fliplr);
    PROB(flipud);
    PROB(hsv_h);
    PROB(hsv_s);
    PROB(hsv_v);
    PROB(min_area_frac);
#undef PROB
    if (!(o->scale >= 0.0f && o->scale < 1.0f)) BAD("scale %g not in [0, 1)", (double)o->scale);
    if (!(o->translate >= 0.0f && o->translate <= 0.5f)) BAD("translate %g not in [0, 0.5]", (double)o->translate);
    if (!(o->degrees >= 0.0f && o->degrees < 90.0f)) BAD("degrees %g not in [0, 90)", (double)o->degrees);
    if (!(o->shear >= 0.0f && o->shear < 90.0f)) BAD("shear %g not in [0, 90)", (double)o->shear);
    if (!(o->min_side >= 0.0f && isfinite(o->min_side))) BAD("min_side %g must be >= 0", (double)o->min_side);
    if (!(o->max_aspect > 1.0f)) BAD("max_aspect %g must be > 1", (double)o->max_aspect);
    return 0;
#undef BAD
}

/* ---- samples ---------------------------------------------------------------------- */

static int sample_reserve(acv_det_sample *s, int n)
{
    if (n <= s->cap) return 0;
    int cap = n < 8 ? 8 : n;
    acv_box *b = realloc(s->boxes, (size_t)cap * sizeof *b);
    if (!b) return acv_error(ACV_ENOMEM, "detection augmentation: out of memory for %d boxes", n);
    s->boxes = b;
    float *a = realloc(s->area0, (size_t)cap * sizeof *a);
    if (!a) return acv_error(ACV_ENOMEM, "detection augmentation: out of memory for %d boxes", n);
    s->area0 = a;
    s->cap = cap;
    return 0;
}

int acv_det_sample_init(acv_det_sample *s, acv_image im, const acv_box *boxes, int n)
{
    memset(s, 0, sizeof *s);
    s->im = im;
    int rc = sample_reserve(s, n);
    if (rc) {
        acv_det_sample_free(s);
        return rc;
    }
    for (int i = 0; i < n; i++) {
        s->boxes[i] = boxes[i];
        s->area0[i] = acv_box_area(&boxes[i]);
    }
    s->n = n;
    return 0;
}

void acv_det_sample_free(acv_det_sample *s)
{
    acv_image_free(&s->im);
    free(s->boxes);
    free(s->area0);
    memset(s, 0, sizeof *s);
}

/* ---- letterbox and resize --------------------------------------------------------- */

int acv_det_letterbox(const acv_image *src, int size, acv_box *boxes, int n, acv_image *dst,
                      acv_letterbox_info *info)
{
    acv_letterbox_info li;
    int rc = acv_img_letterbox(src, size, size, ACV_DET_FILL, &li, dst);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
        acv_box *b = &boxes[i];
        b->x1 = b->x1 * li.scale + (float)li.pad_x;
        b->x2 = b->x2 * li.scale + (float)li.pad_x;
        b->y1 = b->y1 * li.scale + (float)li.pad_y;
        b->y2 = b->y2 * li.scale + (float)li.pad_y;
    }
    if (info) *info = li;
    return 0;
}

int acv_det_resize_long(acv_det_sample *s, int size)
{
    acv_image *im = &s->im;
    if (size < 1) return acv_error(ACV_EINVAL, "resize: size %d must be positive", size);
    int lg = im->w > im->h ? im->w : im->h;
    if (lg == size) return 0;
    double r = (double)size / lg;
    int w = (int)ceil(im->w * r - 1e-9), h = (int)ceil(im->h * r - 1e-9);
    w = w < 1 ? 1 : w > size ? size : w;
    h = h < 1 ? 1 : h > size ? size : h;
    int mode = (w < im->w || h < im->h) ? ACV_RESIZE_AREA : ACV_RESIZE_BILINEAR;
    acv_image t;
    int rc = acv_img_resize(im, w, h, mode, &t);
    if (rc) return rc;
    float sx = (float)w / im->w, sy = (float)h / im->h;
    acv_image_free(im);
    *im = t;
    for (int i = 0; i < s->n; i++) {
        acv_box *b = &s->boxes[i];
        b->x1 *= sx;
        b->x2 *= sx;
        b->y1 *= sy;
        b->y2 *= sy;
        s->area0[i] *= sx * sy;
    }
    return 0;
}

/* ---- mosaic ----------------------------------------------------------------------- */

/* Copies the part of src whose top-left corner lands at (ox, oy) in dst (same channels)
 * that falls inside dst. */
static void paste(acv_image *dst, const acv_image *src, int ox, int oy)
{
    int x0 = ox < 0 ? 0 : ox, y0 = oy < 0 ? 0 : oy;
    int x1 = ox + src->w > dst->w ? dst->w : ox + src->w, y1 = oy + src->h > dst->h ? dst->h : oy + src->h;
    if (x1 <= x0 || y1 <= y0) return;
    int c = dst->c;
    for (int y = y0; y < y1; y++)
        memcpy(dst->data + ((size_t)y * dst->w + x0) * c, src->data + ((size_t)(y - oy) * src->w + (x0 - ox)) * c,
               (size_t)(x1 - x0) * c);
}

/* Appends src's boxes moved by (ox, oy) and clipped to w x h to out (dropping empty ones). */
static void place_boxes(acv_det_sample *out, const acv_det_sample *src, int ox, int oy, int w, int h)
{
    for (int i = 0; i < src->n; i++) {
        acv_box b = src->boxes[i];
        b.x1 = fminf(fmaxf(b.x1 + ox, 0.0f), (float)w);
        b.x2 = fminf(fmaxf(b.x2 + ox, 0.0f), (float)w);
        b.y1 = fminf(fmaxf(b.y1 + oy, 0.0f), (float)h);
        b.y2 = fminf(fmaxf(b.y2 + oy, 0.0f), (float)h);
        if (!(b.x2 > b.x1 && b.y2 > b.y1)) continue;
        out->boxes[out->n] = b;
        out->area0[out->n] = src->area0[i];
        out->n++;
    }
}

int acv_det_mosaic(const acv_det_sample *const parts[4], int size, int xc, int yc, acv_det_sample *out)
{
    memset(out, 0, sizeof *out);
    int S2 = 2 * size, total = 0, c = parts[0]->im.c;
    for (int i = 0; i < 4; i++) {
        const acv_image *im = &parts[i]->im;
        if (im->w > size || im->h > size || im->c != c)
            return acv_error(ACV_EINVAL, "mosaic: part %d is %dx%dx%d, expected at most %dx%dx%d", i, im->w, im->h,
                             im->c, size, size, c);
        total += parts[i]->n;
    }
    int rc = acv_image_alloc(&out->im, S2, S2, c);
    if (rc == 0) rc = sample_reserve(out, total);
    if (rc) {
        acv_det_sample_free(out);
        return rc;
    }
    memset(out->im.data, ACV_DET_FILL, (size_t)S2 * S2 * c);
    for (int i = 0; i < 4; i++) {
        const acv_image *im = &parts[i]->im;
        int ox = (i & 1) ? xc : xc - im->w, oy = (i & 2) ? yc : yc - im->h;
        paste(&out->im, im, ox, oy);
        place_boxes(out, parts[i], ox, oy, S2, S2);
    }
    return 0;
}

/* ---- affine ----------------------------------------------------------------------- */

/* r = a * b for 2x3 affine matrices (the implicit third row is 0 0 1). */
static void mat_mul(const double a[6], const double b[6], double r[6])
{
    double t[6] = {
        a[0] * b[0] + a[1] * b[3], a[0] * b[1] + a[1] * b[4], a[0] * b[2] + a[1] * b[5] + a[2],
        a[3] * b[0] + a[4] * b[3], a[3] * b[1] + a[4] * b[4], a[3] * b[2] + a[4] * b[5] + a[5],
    };
    memcpy(r, t, sizeof t);
}

static double uniform(acv_rng *r, double lo, double hi) { return lo + (hi - lo) * acv_rng_uniform(r); }

void acv_det_random_affine(const acv_det_aug_opts *o, int src_w, int src_h, int out_w, int out_h, acv_rng *rng,
                           float m[6])
{
    const double deg = M_PI / 180.0;
    double C[6] = {1, 0, -src_w / 2.0, 0, 1, -src_h / 2.0};
    double a = uniform(rng, -o->degrees, o->degrees) * deg;
    double s = uniform(rng, 1.0 - o->scale, 1.0 + o->scale);
    /* cv2.getRotationMatrix2D(centre 0, angle a, scale s): counter-clockwise on screen. */
    double R[6] = {s * cos(a), s * sin(a), 0, -s * sin(a), s * cos(a), 0};
    double shx = tan(uniform(rng, -o->shear, o->shear) * deg), shy = tan(uniform(rng, -o->shear, o->shear) * deg);
    double Sh[6] = {1, shx, 0, shy, 1, 0};
    double T[6] = {1, 0, uniform(rng, 0.5 - o->translate, 0.5 + o->translate) * out_w,
                   0, 1, uniform(rng, 0.5 - o->translate, 0.5 + o->translate) * out_h};
    double M[6];
    mat_mul(R, C, M);
    mat_mul(Sh, M, M);
    mat_mul(T, M, M);
    for (int i = 0; i < 6; i++) m[i] = (float)M[i];
}

/* Bilinear warp: dst pixel centre p samples src at inv * p (continuous coordinates). */
static void warp_bilinear(const acv_image *src, const double inv[6], acv_image *dst)
{
    int W = src->w, H = src->h, c = src->c;
    const uint8_t *sd = src->data;
    for (int y = 0; y < dst->h; y++) {
        uint8_t *drow = dst->data + (size_t)y * dst->w * c;
        double yc = y + 0.5;
        /* index coordinates of the sample point: continuous - 0.5 */
        double fx = inv[0] * 0.5 + inv[1] * yc + inv[2] - 0.5;
        double fy = inv[3] * 0.5 + inv[4] * yc + inv[5] - 0.5;
        for (int x = 0; x < dst->w; x++, fx += inv[0], fy += inv[3]) {
            uint8_t *d = drow + (size_t)x * c;
            double flx = floor(fx), fly = floor(fy);
            if (!(flx >= -1.0 && flx < W && fly >= -1.0 && fly < H)) {
                memset(d, ACV_DET_FILL, (size_t)c);
                continue;
            }
            int x0 = (int)flx, y0 = (int)fly;
            float ax = (float)(fx - flx), ay = (float)(fy - fly);
            if (x0 >= 0 && y0 >= 0 && x0 + 1 < W && y0 + 1 < H) {
                const uint8_t *p00 = sd + ((size_t)y0 * W + x0) * c, *p10 = p00 + (size_t)W * c;
                for (int k = 0; k < c; k++) {
                    float top = p00[k] + ax * (p00[k + c] - p00[k]);
                    float bot = p10[k] + ax * (p10[k + c] - p10[k]);
                    d[k] = (uint8_t)(top + ay * (bot - top) + 0.5f);
                }
                continue;
            }
            for (int k = 0; k < c; k++) {
                float v[2][2];
                for (int j = 0; j < 2; j++)
                    for (int i = 0; i < 2; i++) {
                        int xx = x0 + i, yy = y0 + j;
                        v[j][i] = (xx >= 0 && xx < W && yy >= 0 && yy < H) ? sd[((size_t)yy * W + xx) * c + k]
                                                                             : (float)ACV_DET_FILL;
                    }
                float top = v[0][0] + ax * (v[0][1] - v[0][0]);
                float bot = v[1][0] + ax * (v[1][1] - v[1][0]);
                d[k] = (uint8_t)(top + ay * (bot - top) + 0.5f);
            }
        }
    }
}

/* YOLO box_candidates against the unclipped reference area; a side under min_side only fails
 * when the border cut it (uw, uh: the sides before clipping), so that thin objects wholly in
 * the picture (a 1-pixel scratch) stay labelled while slivers left at the border go. */
static int box_ok(const acv_box *b, float ref_area, float uw, float uh, const acv_det_aug_opts *o)
{
    float w = b->x2 - b->x1, h = b->y2 - b->y1;
    if (!(w > 0.0f && h > 0.0f)) return 0;
    if (w < o->min_side && w < 0.999f * uw) return 0;
    if (h < o->min_side && h < 0.999f * uh) return 0;
    if (w * h < o->min_area_frac * ref_area) return 0;
    float ar = w > h ? w / h : h / w;
    return ar < o->max_aspect;
}

int acv_det_warp_affine(acv_det_sample *s, const float m[6], int out_w, int out_h, const acv_det_aug_opts *o)
{
    acv_det_aug_opts def;
    if (!o) {
        acv_det_aug_opts_default(&def);
        o = &def;
    }
    if (out_w < 1 || out_h < 1) return acv_error(ACV_EINVAL, "warp: output size %dx%d must be positive", out_w, out_h);
    double M[6];
    for (int i = 0; i < 6; i++) {
        if (!isfinite(m[i])) return acv_error(ACV_EINVAL, "warp: matrix entry %d is not finite", i);
        M[i] = m[i];
    }
    double det = M[0] * M[4] - M[1] * M[3];
    if (!(fabs(det) > 1e-12)) return acv_error(ACV_EINVAL, "warp: the matrix is singular");
    int identity = M[0] == 1 && M[1] == 0 && M[2] == 0 && M[3] == 0 && M[4] == 1 && M[5] == 0;
    if (!(identity && out_w == s->im.w && out_h == s->im.h)) {
        double inv[6] = {M[4] / det, -M[1] / det, 0, -M[3] / det, M[0] / det, 0};
        inv[2] = -(inv[0] * M[2] + inv[1] * M[5]);
        inv[5] = -(inv[3] * M[2] + inv[4] * M[5]);
        acv_image t;
        int rc = acv_image_alloc(&t, out_w, out_h, s->im.c);
        if (rc) return rc;
        warp_bilinear(&s->im, inv, &t);
        acv_image_free(&s->im);
        s->im = t;
    }
    float adet = (float)fabs(det);
    int k = 0;
    for (int i = 0; i < s->n; i++) {
        acv_box b = s->boxes[i];
        double xs[4] = {b.x1, b.x2, b.x1, b.x2}, ys[4] = {b.y1, b.y1, b.y2, b.y2};
        double lx = INFINITY, ly = INFINITY, hx = -INFINITY, hy = -INFINITY;
        for (int j = 0; j < 4; j++) {
            double x = M[0] * xs[j] + M[1] * ys[j] + M[2], y = M[3] * xs[j] + M[4] * ys[j] + M[5];
            lx = fmin(lx, x);
            hx = fmax(hx, x);
            ly = fmin(ly, y);
            hy = fmax(hy, y);
        }
        b.x1 = (float)fmin(fmax(lx, 0.0), out_w);
        b.x2 = (float)fmin(fmax(hx, 0.0), out_w);
        b.y1 = (float)fmin(fmax(ly, 0.0), out_h);
        b.y2 = (float)fmin(fmax(hy, 0.0), out_h);
        float ref = s->area0[i] * adet;
        if (!box_ok(&b, ref, (float)(hx - lx), (float)(hy - ly), o)) continue;
        s->boxes[k] = b;
        s->area0[k] = ref;
        k++;
    }
    s->n = k;
    return 0;
}

/* ---- flips and colour ------------------------------------------------------------- */

void acv_det_flip_h(acv_det_sample *s)
{
    acv_img_flip_h(&s->im);
    float w = (float)s->im.w;
    for (int i = 0; i < s->n; i++) {
        float x1 = s->boxes[i].x1;
        s->boxes[i].x1 = w - s->boxes[i].x2;
        s->boxes[i].x2 = w - x1;
    }
}

void acv_det_flip_v(acv_det_sample *s)
{
    acv_img_flip_v(&s->im);
    float h = (float)s->im.h;
    for (int i = 0; i < s->n; i++) {
        float y1 = s->boxes[i].y1;
        s->boxes[i].y1 = h - s->boxes[i].y2;
        s->boxes[i].y2 = h - y1;
    }
}

/* OpenCV COLOR_RGB2HSV for 8-bit: H in [0, 180), S and V in [0, 255]. */
static void rgb2hsv_u8(int r, int g, int b, int *h, int *s, int *v)
{
    int mx = r > g ? (r > b ? r : b) : (g > b ? g : b);
    int mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
    int d = mx - mn;
    *v = mx;
    *s = mx ? (int)lrintf(255.0f * d / mx) : 0;
    if (d == 0) {
        *h = 0;
        return;
    }
    float hh;
    if (mx == r) hh = 30.0f * (g - b) / d;
    else if (mx == g) hh = 60.0f + 30.0f * (b - r) / d;
    else hh = 120.0f + 30.0f * (r - g) / d;
    int hi = (int)lrintf(hh);
    if (hi < 0) hi += 180;
    if (hi >= 180) hi -= 180;
    *h = hi;
}

/* OpenCV COLOR_HSV2RGB for 8-bit. */
static void hsv2rgb_u8(int h, int s, int v, uint8_t *out)
{
    float fv = v / 255.0f, fs = s / 255.0f, r, g, b;
    if (s == 0) {
        r = g = b = fv;
    } else {
        float hh = h * (6.0f / 180.0f);
        int sec = (int)floorf(hh);
        float f = hh - sec;
        sec %= 6;
        float p = fv * (1 - fs), q = fv * (1 - fs * f), t = fv * (1 - fs * (1 - f));
        switch (sec) {
        case 0: r = fv; g = t; b = p; break;
        case 1: r = q; g = fv; b = p; break;
        case 2: r = p; g = fv; b = t; break;
        case 3: r = p; g = q; b = fv; break;
        case 4: r = t; g = p; b = fv; break;
        default: r = fv; g = p; b = q; break;
        }
    }
    out[0] = (uint8_t)lrintf(r * 255.0f);
    out[1] = (uint8_t)lrintf(g * 255.0f);
    out[2] = (uint8_t)lrintf(b * 255.0f);
}

void acv_det_hsv(acv_image *im, float hgain, float sgain, float vgain, acv_rng *rng)
{
    if (!(hgain > 0.0f || sgain > 0.0f || vgain > 0.0f) || im->c != 3) return;
    float r[3] = {hgain, sgain, vgain};
    for (int i = 0; i < 3; i++) r[i] = (2.0f * acv_rng_uniform(rng) - 1.0f) * r[i] + 1.0f;
    uint8_t lh[256], ls[256], lv[256];
    for (int x = 0; x < 256; x++) {
        lh[x] = (uint8_t)fmodf(x * r[0], 180.0f);
        float s = x * r[1], v = x * r[2];
        ls[x] = (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
        lv[x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    size_t n = (size_t)im->w * im->h;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = im->data + i * 3;
        int h, s, v;
        rgb2hsv_u8(p[0], p[1], p[2], &h, &s, &v);
        hsv2rgb_u8(lh[h], ls[s], lv[v], p);
    }
}

/* ---- the training pipeline -------------------------------------------------------- */

int acv_det_augment(acv_det_sample *parts, int nparts, int size, const acv_det_aug_opts *o, acv_rng *rng,
                    acv_det_sample *out)
{
    memset(out, 0, sizeof *out);
    int rc = 0;
    if (nparts != 1 && nparts != 4) {
        rc = acv_error(ACV_EINVAL, "detection augmentation: %d parts (1 or 4 expected)", nparts);
        goto done;
    }
    int src_size;
    if (nparts == 4) {
        /* YOLO: centre uniform in [S/2, 3S/2) on each axis */
        int yc = (int)uniform(rng, size * 0.5, size * 1.5), xc = (int)uniform(rng, size * 0.5, size * 1.5);
        const acv_det_sample *const p4[4] = {&parts[0], &parts[1], &parts[2], &parts[3]};
        if ((rc = acv_det_mosaic(p4, size, xc, yc, out))) goto done;
        src_size = 2 * size;
    } else {
        const acv_image *im = &parts[0].im;
        if (im->w > size || im->h > size) {
            rc = acv_error(ACV_EINVAL, "detection augmentation: image %dx%d larger than %d", im->w, im->h, size);
            goto done;
        }
        /* centred letterbox of an image whose long side is already at most size */
        int px = (size - im->w) / 2, py = (size - im->h) / 2;
        if ((rc = acv_image_alloc(&out->im, size, size, im->c)) || (rc = sample_reserve(out, parts[0].n))) goto done;
        memset(out->im.data, ACV_DET_FILL, (size_t)size * size * im->c);
        paste(&out->im, im, px, py);
        place_boxes(out, &parts[0], px, py, size, size);
        src_size = size;
    }
    float m[6];
    acv_det_random_affine(o, src_size, src_size, size, size, rng, m);
    if ((rc = acv_det_warp_affine(out, m, size, size, o))) goto done;
    acv_det_hsv(&out->im, o->hsv_h, o->hsv_s, o->hsv_v, rng);
    if (o->flipud > 0.0f && acv_rng_uniform(rng) < o->flipud) acv_det_flip_v(out);
    if (o->fliplr > 0.0f && acv_rng_uniform(rng) < o->fliplr) acv_det_flip_h(out);
done:
    for (int i = 0; i < nparts; i++) acv_det_sample_free(&parts[i]);
    if (rc) acv_det_sample_free(out);
    return rc;
}
