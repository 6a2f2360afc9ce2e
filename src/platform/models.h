/* The model repository: models by unique name (global, not per project), each with versions
 * numbered from 1. A version is a model directory (autocv/model.h) stored under
 * DATA/models/<model id>/<version>/ (model_versions.dir holds that path relative to the data
 * folder) with its metrics, lineage and a summary of the network; it never changes after it
 * is created (only its description and tags do).
 *
 * Versions come from a finished training job (acv_models_publish: the job's model folder is
 * copied) or from outside (acv_models_upload: an .onnx file, converted to a model directory
 * that keeps the file as original.onnx, or a zipped model directory). Either way the model is
 * loaded and run once on a zero input before anything is stored: a model that cannot load or
 * run is refused with the reason (ACV_EINVAL, ACV_EFORMAT, ACV_EUNSUPPORTED, ... from the
 * loader), and nothing is written. The version folder is written under DATA/tmp first and
 * renamed into place inside the transaction that inserts its row, so a crash leaves either a
 * complete version or none (at worst an unreferenced folder, replaced when its number is used
 * again).
 *
 * A model as the API shows it: {"id","name","task","description","tags","latest_version"
 * (null without versions),"versions" (count),"project_id" (the project of the job that first
 * published it, else null),"created_by","created_at","updated_at"}.
 * A version: {"id","model","version","task","source" ("job" | "upload"),"description","tags",
 * "classes","input":{"channels","height","width","mean","std","resize"},"metrics","lineage",
 * "info":{"params","gflops","size_bytes","arch"},"job_id","created_by","created_at"}; read one
 * by one (acv_models_version_get) it also has "evaluations":[{"id","status",
 * "dataset_version_id","split","created_at","summary"}] (newest first; summary is the
 * report's "summary" object, or null) and "deployments":[{"id","name"}].
 *
 * Names: 1..100 characters of [A-Za-z0-9._-] starting with a letter or a digit, unique
 * case-insensitively (lookups ignore case too). Every change writes an audit entry (target
 * types "model" and "model_version") in its transaction. */
#ifndef ACV_PLATFORM_MODELS_H
#define ACV_PLATFORM_MODELS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "platform/auth.h"
#include "platform/db.h"

#define ACV_MODEL_NAME_MAX 100
#define ACV_MODEL_TAGS_MAX 64
#define ACV_MODEL_TAG_MAX 100
#define ACV_MODEL_DESC_MAX 10000
#define ACV_MODEL_ZIP_ENTRIES 16 /* entries (files and folders) in an uploaded zip */

/* 0 when name follows the rules above, ACV_EINVAL naming the rule otherwise. */
int acv_models_name_ok(const char *name);

/* ---- reads ---- */
/* Models whose name contains q (case-insensitive; NULL: any) and whose task is task (NULL:
 * any), by name; *total counts every match. */
int acv_models_list(acv_dbconn *c, const char *q, const char *task, int limit, int offset, json_t **items,
                    int64_t *total);
/* One model by name; ACV_ENOTFOUND naming it. */
int acv_models_get(acv_dbconn *c, const char *name, json_t **out);
/* The versions of a model, newest first (without evaluations and deployments). */
int acv_models_versions(acv_dbconn *c, const char *name, int limit, int offset, json_t **items, int64_t *total);
/* One version with its evaluations and deployments; version <= 0: the latest. Models are
 * global but evaluations are made on a project's dataset version: viewer > 0 lists only
 * those on dataset versions of projects that user is a member of (0: all of them). */
int acv_models_version_get(acv_dbconn *c, const char *name, int version, int64_t viewer, json_t **out);
/* The viewer for acv_models_version_get: the user, or 0 for an administrator (or no one). */
int64_t acv_models_viewer(const acv_principal *who);

/* Finds version `version` of model `name` (version <= 0: the newest) for code that uses the
 * model directory (deployments, evaluations, pre-annotation). Each output may be NULL:
 * *version_id the model_versions id; *dir_rel the model directory relative to the data folder
 * ("models/3/2", malloc'd; join it to the data folder, e.g. with acv_server_path); *row the
 * version object (new reference, without evaluations and deployments). ACV_ENOTFOUND naming
 * the model or the version when either is missing (outputs then untouched). */
int acv_models_resolve(acv_dbconn *c, const char *name, int version, int64_t *version_id, char **dir_rel,
                       json_t **row);

/* ---- changes ---- */
/* Applies {"description","tags":[...]} (other keys are ACV_EINVAL) to a model, or to one of
 * its versions when version > 0; *out (may be NULL) gets the changed object. */
int acv_models_update(acv_dbconn *c, const acv_principal *who, const char *name, int version, const json_t *patch,
                      json_t **out);
/* Deletes a version (version > 0) or the whole model with all its versions (version == 0),
 * then, after the commit, their folders under data_dir. ACV_EEXIST ("version N of NAME is
 * deployed as D") while a deployment uses one of them. */
int acv_models_delete(acv_dbconn *c, const acv_principal *who, const char *data_dir, const char *name, int version);

/* An external model to add as a new version. */
typedef struct acv_model_upload {
    const char *path;        /* the uploaded file: an ONNX file, or a zip of a model directory */
    const char *filename;    /* the client's name for it (lineage and messages), or NULL */
    const char *task;        /* NULL: the model's own (ONNX: cls) */
    const json_t *classes;   /* array of class names, or NULL: required for ONNX files whose
                                metadata has none; replaces a zipped model's names (same count) */
    int nnorm;               /* values in mean/std (0: not given: the model's own; ONNX: ImageNet's) */
    float mean[4], std[4];
    int imgsz;               /* ONNX with dynamic height/width: the input side (0: 224) */
    const char *description; /* or NULL */
    const json_t *tags;      /* array of strings, or NULL */
    uint64_t max_bytes;      /* a zip may decompress to at most this many bytes in all */
} acv_model_upload;

/* Adds version max+1 of model `name` (created with the model's task when it does not exist)
 * from u, after loading it and running it once (see above): ONNX is recognized by content (a
 * zip starts with "PK"). Zips are read with the checks of archive imports (no absolute or
 * '..' paths, no links or devices; ACV_EINVAL) plus at most ACV_MODEL_ZIP_ENTRIES entries and
 * u->max_bytes decompressed (ACV_ERANGE); model.json and weights.safetensors (and
 * metrics.json) may sit inside one top folder. ACV_EEXIST when the model exists with another
 * task. tmp_dir is the work folder (DATA/tmp, on the same file system as data_dir). *out gets
 * the new version object. */
int acv_models_upload(acv_dbconn *c, const acv_principal *who, const char *data_dir, const char *tmp_dir,
                      const char *name, const acv_model_upload *u, json_t **out);

/* The project of job job_id (for the publish route's permission); ACV_ENOTFOUND. */
int acv_models_job_project(acv_dbconn *c, int64_t job_id, int64_t *project_id);
/* Publishes the model a training job produced (DATA/<jobs.dir>/model: model.json,
 * weights.safetensors, metrics.json; the checkpoint is left behind) as version max+1 of
 * `name`: metrics from metrics.json (else the job's result), lineage {"job_id",
 * "dataset_version_id","dataset_version" (its name),"project_id","algorithm","params",
 * "published_by"}. ACV_ENOTFOUND for no such job; ACV_EEXIST when it is not a training job,
 * has not succeeded (naming its status), or the model exists with another task. */
int acv_models_publish(acv_dbconn *c, const acv_principal *who, const char *data_dir, const char *tmp_dir,
                       const char *name, int64_t job_id, const char *description, const json_t *tags, json_t **out);

/* ---- files ---- */
/* Writes every regular file of model directory dir into a new zip at zip_path (flat: unzip
 * it into a folder and that folder is the model directory). */
int acv_models_zip(const char *dir, const char *zip_path);

#endif
