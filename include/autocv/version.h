/* AutoCV's version. */
#ifndef AUTOCV_VERSION_H
#define AUTOCV_VERSION_H
#define AUTOCV_VERSION "0.1.0"
#define AUTOCV_MODEL_FORMAT 1
#endif
