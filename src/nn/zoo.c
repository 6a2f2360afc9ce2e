/* Model zoo (see zoo.h). Names follow torchvision's module paths. */
#include "nn/zoo.h"

#include <stdio.h>
#include <string.h>

#include "autocv/error.h"
#include "nn/kernels.h"

static const acv_zoo_entry ZOO[] = {
    {"compact", "small VGG-style CNN with batch norm for small images (28-64 px): fast to train on CPU", 8, 28},
    {"compact-l", "wider compact CNN: more accurate on small images, about 3x the cost of compact", 8, 28},
    {"resnet18", "ResNet-18 (torchvision layout): a good general default for 64-224 px", 32, 224},
    {"resnet34", "ResNet-34 (torchvision layout): deeper, more accurate, about 2x ResNet-18's cost", 32, 224},
    {"resnet50", "ResNet-50 (torchvision layout, bottleneck blocks): accurate, heavy on CPU", 32, 224},
    {"mobilenetv2", "MobileNetV2 (torchvision layout): light and fast for edge deployment", 32, 224},
};
#define ZOO_N ((int)(sizeof ZOO / sizeof ZOO[0]))

int acv_zoo_list(const acv_zoo_entry **list)
{
    *list = ZOO;
    return ZOO_N;
}

const acv_zoo_entry *acv_zoo_find(const char *name)
{
    for (int i = 0; i < ZOO_N; i++)
        if (!strcmp(ZOO[i].name, name)) return &ZOO[i];
    return NULL;
}

const char *acv_zoo_auto(int imgsz, int64_t n_images)
{
    if (imgsz <= 64) return "compact";
    (void)n_images;
    return "resnet18";
}

static const char *nm(char *buf, size_t cap, const char *fmt, const char *a, int i, const char *b)
{
    snprintf(buf, cap, fmt, a, i, b);
    return buf;
}

/* conv (no bias) + BN (+ ReLU), named prefix+conv / prefix+bn */
static acv_id conv_bn(acv_graph *g, acv_id x, const char *conv_name, const char *bn_name, int out, int k,
                      int stride, int pad, int groups, int act)
{
    x = acv_conv2d(g, conv_name, x, out, k, stride, pad, 1, groups, false);
    x = acv_batchnorm(g, bn_name, x, 1e-5f, 0.1f);
    if (act >= 0) x = acv_activation(g, x, act, 0);
    return x;
}

/* ---- compact ------------------------------------------------------------------------- */
static acv_id build_compact(acv_graph *g, acv_id x, int classes, const int *w)
{
    char a[64], b[64];
    int li = 0;
    for (int s = 0; s < 3; s++) {
        for (int r = 0; r < 2; r++) {
            snprintf(a, sizeof a, "features.%d.conv", li);
            snprintf(b, sizeof b, "features.%d.bn", li);
            x = conv_bn(g, x, a, b, w[s], 3, 1, 1, 1, ACV_ACT_RELU);
            li++;
        }
        if (s < 2) x = acv_maxpool(g, x, 2, 2, 0, false);
    }
    x = acv_global_avgpool(g, x);
    x = acv_flatten(g, x, 1);
    x = acv_dropout(g, x, 0.2f);
    return acv_linear(g, "classifier", x, classes, true);
}

/* ---- ResNet ---------------------------------------------------------------------------- */
static acv_id basic_block(acv_graph *g, acv_id x, const char *p, int planes, int stride, int inplanes)
{
    char c[128], d[128];
    acv_id idn = x;
    snprintf(c, sizeof c, "%s.conv1", p); snprintf(d, sizeof d, "%s.bn1", p);
    acv_id y = conv_bn(g, x, c, d, planes, 3, stride, 1, 1, ACV_ACT_RELU);
    snprintf(c, sizeof c, "%s.conv2", p); snprintf(d, sizeof d, "%s.bn2", p);
    y = conv_bn(g, y, c, d, planes, 3, 1, 1, 1, -1);
    if (stride != 1 || inplanes != planes) {
        snprintf(c, sizeof c, "%s.downsample.0", p); snprintf(d, sizeof d, "%s.downsample.1", p);
        idn = conv_bn(g, x, c, d, planes, 1, stride, 0, 1, -1);
    }
    return acv_relu(g, acv_add(g, y, idn));
}

static acv_id bottleneck(acv_graph *g, acv_id x, const char *p, int planes, int stride, int inplanes)
{
    char c[128], d[128];
    acv_id idn = x;
    snprintf(c, sizeof c, "%s.conv1", p); snprintf(d, sizeof d, "%s.bn1", p);
    acv_id y = conv_bn(g, x, c, d, planes, 1, 1, 0, 1, ACV_ACT_RELU);
    snprintf(c, sizeof c, "%s.conv2", p); snprintf(d, sizeof d, "%s.bn2", p);
    y = conv_bn(g, y, c, d, planes, 3, stride, 1, 1, ACV_ACT_RELU);
    snprintf(c, sizeof c, "%s.conv3", p); snprintf(d, sizeof d, "%s.bn3", p);
    y = conv_bn(g, y, c, d, planes * 4, 1, 1, 0, 1, -1);
    if (stride != 1 || inplanes != planes * 4) {
        snprintf(c, sizeof c, "%s.downsample.0", p); snprintf(d, sizeof d, "%s.downsample.1", p);
        idn = conv_bn(g, x, c, d, planes * 4, 1, stride, 0, 1, -1);
    }
    return acv_relu(g, acv_add(g, y, idn));
}

static acv_id build_resnet(acv_graph *g, acv_id x, int classes, const int *layers, bool bottle)
{
    x = conv_bn(g, x, "conv1", "bn1", 64, 7, 2, 3, 1, ACV_ACT_RELU);
    x = acv_maxpool(g, x, 3, 2, 1, false);
    int inplanes = 64;
    char p[64], tmp[64];
    for (int l = 0; l < 4; l++) {
        int planes = 64 << l;
        for (int i = 0; i < layers[l]; i++) {
            snprintf(tmp, sizeof tmp, "layer%d", l + 1);
            nm(p, sizeof p, "%s.%d%s", tmp, i, "");
            int stride = (i == 0 && l > 0) ? 2 : 1;
            x = bottle ? bottleneck(g, x, p, planes, stride, inplanes) : basic_block(g, x, p, planes, stride, inplanes);
            inplanes = bottle ? planes * 4 : planes;
        }
    }
    x = acv_global_avgpool(g, x);
    x = acv_flatten(g, x, 1);
    return acv_linear(g, "fc", x, classes, true);
}

/* ---- MobileNetV2 ------------------------------------------------------------------------ */
static int make_divisible(double v, int div)
{
    int nv = (int)(v + div / 2.0) / div * div;
    if (nv < div) nv = div;
    if (nv < 0.9 * v) nv += div;
    return nv;
}

static acv_id build_mobilenetv2(acv_graph *g, acv_id x, int classes)
{
    static const int cfg[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                  {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    char c[128], d[128];
    int in_c = make_divisible(32, 8);
    x = conv_bn(g, x, "features.0.0", "features.0.1", in_c, 3, 2, 1, 1, ACV_ACT_RELU6);
    int fi = 1;
    for (int s = 0; s < 7; s++) {
        int t = cfg[s][0], out_c = make_divisible(cfg[s][1], 8);
        for (int i = 0; i < cfg[s][2]; i++, fi++) {
            int stride = i == 0 ? cfg[s][3] : 1;
            int hidden = in_c * t;
            acv_id y = x;
            int k = 0;
            if (t != 1) {
                snprintf(c, sizeof c, "features.%d.conv.%d.0", fi, k); snprintf(d, sizeof d, "features.%d.conv.%d.1", fi, k);
                y = conv_bn(g, y, c, d, hidden, 1, 1, 0, 1, ACV_ACT_RELU6);
                k++;
            }
            snprintf(c, sizeof c, "features.%d.conv.%d.0", fi, k); snprintf(d, sizeof d, "features.%d.conv.%d.1", fi, k);
            y = conv_bn(g, y, c, d, hidden, 3, stride, 1, hidden, ACV_ACT_RELU6);
            k++;
            snprintf(c, sizeof c, "features.%d.conv.%d", fi, k); snprintf(d, sizeof d, "features.%d.conv.%d", fi, k + 1);
            y = conv_bn(g, y, c, d, out_c, 1, 1, 0, 1, -1);
            x = (stride == 1 && in_c == out_c) ? acv_add(g, x, y) : y;
            in_c = out_c;
        }
    }
    snprintf(c, sizeof c, "features.%d.0", fi); snprintf(d, sizeof d, "features.%d.1", fi);
    x = conv_bn(g, x, c, d, 1280, 1, 1, 0, 1, ACV_ACT_RELU6);
    x = acv_global_avgpool(g, x);
    x = acv_flatten(g, x, 1);
    x = acv_dropout(g, x, 0.2f);
    acv_id w, b;
    int64_t ws[2] = {classes, 1280}, bs[1] = {classes};
    w = acv_param(g, "classifier.1.weight", 2, ws, ACV_INIT_NORMAL_001, true);
    b = acv_param(g, "classifier.1.bias", 1, bs, ACV_INIT_ZERO, true);
    return acv_linear_ex(g, "classifier.1", x, w, b);
}

int acv_zoo_build(acv_graph *g, const char *name, acv_id x, int num_classes, acv_id *logits)
{
    static const int r18[4] = {2, 2, 2, 2}, r34[4] = {3, 4, 6, 3};
    static const int wc[3] = {32, 64, 128}, wcl[3] = {64, 128, 256};
    if (num_classes < 1) return acv_error(ACV_EINVAL, "model %s: needs at least one class", name);
    acv_id y;
    if (!strcmp(name, "compact")) y = build_compact(g, x, num_classes, wc);
    else if (!strcmp(name, "compact-l")) y = build_compact(g, x, num_classes, wcl);
    else if (!strcmp(name, "resnet18")) y = build_resnet(g, x, num_classes, r18, false);
    else if (!strcmp(name, "resnet34")) y = build_resnet(g, x, num_classes, r34, false);
    else if (!strcmp(name, "resnet50")) y = build_resnet(g, x, num_classes, r34, true);
    else if (!strcmp(name, "mobilenetv2")) y = build_mobilenetv2(g, x, num_classes);
    else {
        char list[256] = "";
        for (int i = 0; i < ZOO_N; i++) {
            strcat(list, i ? ", " : "");
            strcat(list, ZOO[i].name);
        }
        return acv_error(ACV_ENOTFOUND, "unknown model '%s' (choose one of: auto, %s)", name, list);
    }
    if (y < 0) return acv_error_prefix(y, "building %s: ", name);
    *logits = y;
    return 0;
}
