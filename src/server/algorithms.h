/* Training algorithms as the guided wizard offers them: the built-in networks per task with
 * their parameters (type, range, default, meaning) and rough cost, and the validation that
 * turns a request's "params" into the `autocv train` flags. Every parameter is optional:
 * "auto" leaves the choice to the trainer, which fits it to the data (image size, dataset
 * size) as `autocv train` does on the command line. */
#ifndef ACV_SERVER_ALGORITHMS_H
#define ACV_SERVER_ALGORITHMS_H

#include <jansson.h>
#include <stdbool.h>

/* The built-in algorithms of task ("cls"; NULL: all) as a JSON array (new reference):
 * [{"name","task","description","builtin":true,"default_imgsz","min_imgsz",
 *   "cost":{"params","gflops","imgsz"},"params":[{"name","type","min","max","choices",
 *   "default","description"}]}]. "auto" is listed first: the trainer picks the network. */
json_t *acv_algorithms_builtin(const char *task);
/* The parameter list shared by every algorithm of task (new reference), for custom ones. */
json_t *acv_algorithms_params(const char *task, bool custom);
/* True when name is a built-in algorithm of task. */
bool acv_algorithms_is_builtin(const char *task, const char *name);
/* Checks params (an object, or NULL) against the parameters of task: ACV_EINVAL with
 * "params.NAME: why" for an unknown name, a wrong type or a value out of range. On success
 * *argv gets the `autocv train` flags as a JSON array of strings (new reference) and *clean
 * the parameters as given, normalized (new reference). */
int acv_algorithms_check(const char *task, bool custom, const json_t *params, json_t **argv, json_t **clean);

#endif
