/* The classification model zoo: architectures by name, layer for layer as torchvision
 * builds them (same parameter names and shapes, so weights and ONNX files line up), plus
 * compact networks for small images. */
#ifndef ACV_NN_ZOO_H
#define ACV_NN_ZOO_H

#include <stdint.h>

#include "autocv/graph.h"

typedef struct acv_zoo_entry {
    const char *name;
    const char *description;
    int min_imgsz;       /* smallest sensible input side */
    int default_imgsz;   /* the size it is usually trained at */
} acv_zoo_entry;

/* Appends the network `name` to g on input x (N, C, H, W) and returns its logits node
 * (N, num_classes) in *logits. Unknown names are ACV_ENOTFOUND naming the choices. */
int acv_zoo_build(acv_graph *g, const char *name, acv_id x, int num_classes, acv_id *logits);
/* What `--model auto` picks for images of side imgsz and a training set of n_images. */
const char *acv_zoo_auto(int imgsz, int64_t n_images);
/* The list of entries; returns the count. */
int acv_zoo_list(const acv_zoo_entry **list);
const acv_zoo_entry *acv_zoo_find(const char *name);

#endif
