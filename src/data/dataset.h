/* Image classification datasets: class names, one label per sample, and a way to get
 * sample i as an acv_image. Samples come either from an in-memory pixel array (idx files,
 * tests) or from image files read on demand (ImageFolder trees, platform snapshots).
 *
 * On-disk formats recognised by acv_cls_dataset_open:
 *  - idx: a directory holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]
 *    and, for the test split, t10k-images-idx3-ubyte[.gz] / t10k-labels-idx1-ubyte[.gz]
 *    (MNIST, Fashion-MNIST, KMNIST). Class names are the Fashion-MNIST names when the
 *    directory name contains "fashion" (case-insensitive), else "0", "1", ...
 *  - ImageFolder, flat: DIR/<class>/ holding .jpg, .jpeg, .png or .bmp files, also in subfolders
 *    (extensions case-insensitive; each file decoded by its content). Files with the
 *    extension of an image format AutoCV does not read (.webp, .tif, .gif, .heic, ...) are
 *    left out and counted (acv_cls_dataset_other_files).
 *  - ImageFolder, split: DIR/train/<class>/..., optional DIR/val/ (or valid/, validation/)
 *    and DIR/test/, each with class folders. Classes come from train/; val/ and test/ may
 *    lack some classes (no folder, or an empty one) but may not add new ones.
 * Class folders are sorted by byte-wise name (Python's sorted(), as torchvision's
 * ImageFolder does); files inside a class are ordered like torchvision too (by directory
 * path, then file name, recursing into subfolders). Hidden entries (names starting with
 * '.') are ignored, unlike torchvision, so that .ipynb_checkpoints or .DS_Store folders
 * never become classes and macOS '._' files are never samples; so are the metadata folders
 * __MACOSX, @eaDir (Synology thumbnails), $RECYCLE.BIN and System Volume Information.
 * Symbolic links are followed (dangling ones skipped). Class names must be valid UTF-8
 * (they go into JSON), unless DIR/classes.txt names the classes.
 *
 * Splits: "train", "val", "test". When the data has no explicit validation part (idx, a
 * flat ImageFolder, or a split tree without val/), "val" is a seeded stratified fraction
 * val_split of the training samples and "train" is the rest; see acv_cls_dataset_open.
 *
 * A dataset is immutable after creation, so acv_cls_dataset_get may be called from any
 * number of threads at once. */
#ifndef ACV_DATA_DATASET_H
#define ACV_DATA_DATASET_H

#include <stdint.h>

#include "vision/image.h"

typedef struct acv_cls_dataset acv_cls_dataset;

/* Opens split ("train", "val" or "test") of the dataset at path, detecting its format.
 *
 * val_split in [0, 1) is the fraction of each class's training samples carved out as the
 * validation split when the data has none of its own: for each class, its samples are
 * shuffled with a generator seeded by (seed, class) and the first round(val_split * count)
 * go to "val" (at least one when val_split > 0 and the class has two or more samples, and
 * never all of them); "train" is the remainder. Samples keep their original relative
 * order in both parts. The same (path, val_split, seed) always gives the same split.
 * With an explicit val/ folder val_split and seed are ignored. Asking for "val" when
 * there is no val/ and val_split is 0 is ACV_EINVAL.
 *
 * Errors (message names the file or folder): ACV_ENOTFOUND for a missing path, no images
 * at all, or a missing split (e.g. "test" without test/ or t10k-* files); ACV_EIO for an
 * unreadable directory; ACV_EFORMAT for an empty class folder (flat, or in train/),
 * class folders in val/ or test/ that train/ lacks (all named), a class folder name that
 * is not UTF-8, or a malformed idx file; ACV_EINVAL for a bad split name or val_split
 * ("val" without val/ and with val_split 0).
 * On success *out is owned by the caller (acv_cls_dataset_free). */
int acv_cls_dataset_open(const char *path, const char *split, float val_split, uint64_t seed,
                         acv_cls_dataset **out);

/* Builds a dataset of n in-memory images, all h x w x c (c = 1 or 3), stored contiguously
 * in pixels (n, h, w, c). pixels, labels (each in [0, k)) and names (k strings) are
 * copied. Used for tests and for data already in memory. */
int acv_cls_dataset_new_memory(const char *const *names, int k, const uint8_t *pixels, int n, int h, int w,
                               int c, const int *labels, acv_cls_dataset **out);

/* Builds a dataset of n image files (read on demand) with labels in [0, k). paths,
 * labels and names are copied; the files are not opened here. */
int acv_cls_dataset_new_files(const char *const *names, int k, const char *const *paths, const int *labels,
                              int n, acv_cls_dataset **out);

void acv_cls_dataset_free(acv_cls_dataset *ds);

int acv_cls_dataset_size(const acv_cls_dataset *ds);
int acv_cls_dataset_num_classes(const acv_cls_dataset *ds);
/* Class name k (0 <= k < num_classes); owned by the dataset. */
const char *acv_cls_dataset_class_name(const acv_cls_dataset *ds, int k);
/* Label of sample i (0 <= i < size). */
int acv_cls_dataset_label(const acv_cls_dataset *ds, int i);
/* The file of sample i, or NULL for in-memory samples; owned by the dataset. */
const char *acv_cls_dataset_path(const acv_cls_dataset *ds, int i);
/* The samples' index in the source it was opened from (the idx file row, or the position
 * in the ImageFolder listing of that part); identity for new_memory/new_files. */
int acv_cls_dataset_source_index(const acv_cls_dataset *ds, int i);
/* "idx", "imagefolder", "memory" or "files". */
const char *acv_cls_dataset_format(const acv_cls_dataset *ds);
/* Files under the class folders that were left out because they are images in a format
 * AutoCV does not read (judged by extension: .webp, .tif, .gif, .heic, .avif, ...): their
 * number (0 for idx and in-memory data) and, in *first when first is not NULL, the first of
 * them (NULL when none; owned by the dataset). */
int acv_cls_dataset_other_files(const acv_cls_dataset *ds, const char **first);
/* Samples per class: counts[k] for k < num_classes (caller's array). */
void acv_cls_dataset_class_counts(const acv_cls_dataset *ds, int *counts);

/* Gets sample i as a new image in *out (caller frees with acv_image_free). want_c: 0 as
 * stored, 1 gray, 3 RGB (gray is replicated, alpha dropped, RGB to gray by the BT.601
 * weights). Thread-safe. A file that cannot be read or decoded is an error (ACV_EIO,
 * ACV_ENOTFOUND, ACV_EFORMAT...) naming the file. */
int acv_cls_dataset_get(const acv_cls_dataset *ds, int i, int want_c, acv_image *out);

#endif
