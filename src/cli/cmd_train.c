/* autocv train: train a model on a dataset. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "tasks/cls.h"
#include "tasks/det_task.h"

#define USAGE "--task cls|det --data PATH --out DIR [--model NAME|auto | --init MODEL [--freeze-backbone]]\n" \
              "             [--epochs N] [--batch N] [--imgsz N]\n" \
              "             [--lr F] [--optimizer sgd|adamw] [--val-split F] [--seed N] [--threads N] [--resume] [--json]"

/* autocv train --task det */
static int train_det(int argc, char **argv)
{
    acv_det_train_opts o;
    acv_det_train_opts_init(&o);
    const char *task = "det";
    int seed = 0;
    bool resume = false, json = false, skip_bad = false, freeze = false;
    acv_argdef defs[] = {
        {"--task", ACV_ARG_STR, &task, "TASK", "det (object detection)"},
        {"--data", ACV_ARG_STR, &o.data, "PATH", "dataset: COCO JSON, YOLO (data.yaml) or Pascal VOC, detected"},
        {"--out", ACV_ARG_STR, &o.out, "DIR", "model directory to write (holds the best model and the checkpoint)"},
        {"--model", ACV_ARG_STR, &o.model, "NAME", "detector: auto, det-s (fast on CPU), det-m (more accurate), det-s-p2 / det-m-p2 (very small objects)"},
        {"--init", ACV_ARG_STR, &o.init, "MODEL", "start from this detection model directory's weights"},
        {"--backbone", ACV_ARG_STR, &o.backbone, "MODEL",
         "backbone from this classifier (model directory or .onnx file): its layers up to stride 32, with their weights"},
        {"--freeze-backbone", ACV_ARG_FLAG, &freeze, NULL, "with --backbone: its weights do not train"},
        {"--epochs", ACV_ARG_INT, &o.epochs, "N", "training epochs (auto: 100)"},
        {"--batch", ACV_ARG_INT, &o.batch, "N", "batch size (auto: 8)"},
        {"--imgsz", ACV_ARG_INT, &o.imgsz, "N", "letterboxed input side, a multiple of 32 (default 640)"},
        {"--lr", ACV_ARG_FLOAT, &o.lr, "F", "peak AdamW learning rate (auto: 0.004)"},
        {"--weight-decay", ACV_ARG_FLOAT, &o.weight_decay, "F", "weight decay (auto: 5e-4*batch/64)"},
        {"--warmup", ACV_ARG_FLOAT, &o.warmup_epochs, "EPOCHS", "linear warmup in epochs (auto: 3)"},
        {"--ema", ACV_ARG_FLOAT, &o.ema_decay, "F", "EMA decay of the weights, 0 to disable (default 0.9999)"},
        {"--patience", ACV_ARG_INT, &o.patience, "N", "stop after N validations without a better AP (default off)"},
        {"--close-mosaic", ACV_ARG_INT, &o.close_mosaic, "N", "epochs at the end without mosaic (auto: 10)"},
        {"--class-balance", ACV_ARG_FLOAT, &o.class_balance, "F",
         "weight classes with few positive anchors (small objects) up to F times; 1: off (auto: 10)"},
        {"--mosaic", ACV_ARG_FLOAT, &o.mosaic, "P", "mosaic probability (default 1)"},
        {"--fliplr", ACV_ARG_FLOAT, &o.fliplr, "P", "horizontal flip probability (default 0.5)"},
        {"--flipud", ACV_ARG_FLOAT, &o.flipud, "P", "vertical flip probability (default 0)"},
        {"--scale", ACV_ARG_FLOAT, &o.scale, "F", "random zoom range +-F (default 0.5)"},
        {"--degrees", ACV_ARG_FLOAT, &o.degrees, "DEG", "random rotation range (default 0)"},
        {"--translate", ACV_ARG_FLOAT, &o.translate, "F", "random shift range, fraction of the size (default 0.1)"},
        {"--val-every", ACV_ARG_INT, &o.val_every, "N", "validate every N epochs and at the last (default 1)"},
        {"--skip-bad", ACV_ARG_FLAG, &skip_bad, NULL, "skip bad labels (counted) instead of failing"},
        {"--seed", ACV_ARG_INT, &seed, "N", "random seed (default 0)"},
        {"--threads", ACV_ARG_INT, &o.threads, "N", "compute threads (default: all cores)"},
        {"--workers", ACV_ARG_INT, &o.workers, "N", "data loading threads (default: min(4, cores))"},
        {"--log-every", ACV_ARG_INT, &o.log_every, "N", "JSON step events every N steps (default 10)"},
        {"--resume", ACV_ARG_FLAG, &resume, NULL, "continue from DIR/checkpoint.safetensors"},
        {"--json", ACV_ARG_FLAG, &json, NULL, "JSON lines on stdout instead of the progress bar"},
    };
    int rc = acv_args_parse("train", USAGE, argc, argv, defs, (int)(sizeof defs / sizeof defs[0]), NULL, NULL);
    if (rc) return rc > 0 ? 0 : 2;
    if (!o.data) return acv_cli_fail("train", "--data PATH is required");
    if (!o.out) return acv_cli_fail("train", "--out DIR is required");
    if (o.epochs < 0 || o.batch < 0 || o.imgsz < 0) return acv_cli_fail("train", "--epochs, --batch and --imgsz must be positive");
    if (o.threads < 0 || o.threads > 1024) return acv_cli_fail("train", "--threads %d is not in 0..1024", o.threads);
    if (o.workers < 0 || o.workers > 64) return acv_cli_fail("train", "--workers %d is not in 0..64", o.workers);
    if (o.log_every < 1) return acv_cli_fail("train", "--log-every must be >= 1");
    if (seed < 0) return acv_cli_fail("train", "--seed must be >= 0");
    o.seed = (uint64_t)seed;
    o.resume = resume;
    o.json = json;
    o.skip_bad = skip_bad;
    if (o.backbone && o.init) return acv_cli_fail("train", "--backbone and --init are exclusive");
    if (freeze && !o.backbone && !resume) return acv_cli_fail("train", "--freeze-backbone needs --backbone MODEL");
    if (o.backbone && resume) return acv_cli_fail("train", "--resume takes the backbone from the checkpoint: leave --backbone out");
    o.freeze_backbone = freeze && !resume; /* a resumed run keeps its checkpoint's configuration */
    rc = acv_det_train(&o);
    return rc ? acv_cli_error("train", rc) : 0;
}

int acv_cmd_train(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--task") && !strcmp(argv[i + 1], "det")) return train_det(argc, argv);
    acv_cls_train_opts o;
    acv_cls_train_opts_init(&o);
    const char *task = "cls";
    int seed = 0;
    bool resume = false, json = false, freeze = false;
    acv_argdef defs[] = {
        {"--task", ACV_ARG_STR, &task, "TASK", "task: cls (image classification) or det (object detection: see --task det --help)"},
        {"--data", ACV_ARG_STR, &o.data, "PATH", "dataset: an ImageFolder tree or a folder of MNIST-style idx files"},
        {"--out", ACV_ARG_STR, &o.out, "DIR", "model directory to write (holds the best model and the checkpoint)"},
        {"--model", ACV_ARG_STR, &o.model, "NAME", "architecture: auto, compact, compact-l, resnet18, resnet34, resnet50, mobilenetv2"},
        {"--init", ACV_ARG_STR, &o.init, "MODEL", "fine-tune: start from this model directory or .onnx file (new classifier)"},
        {"--freeze-backbone", ACV_ARG_FLAG, &freeze, NULL, "with --init: train only the new classifier"},
        {"--epochs", ACV_ARG_INT, &o.epochs, "N", "training epochs (auto: 30)"},
        {"--batch", ACV_ARG_INT, &o.batch, "N", "batch size (auto: by model and image size)"},
        {"--imgsz", ACV_ARG_INT, &o.imgsz, "N", "input side in pixels (auto: from the data)"},
        {"--lr", ACV_ARG_FLOAT, &o.lr, "F", "peak learning rate (auto: 0.1*batch/256 for sgd, 1e-3*batch/64 for adamw)"},
        {"--optimizer", ACV_ARG_STR, &o.optimizer, "NAME", "sgd (Nesterov momentum 0.9) or adamw"},
        {"--schedule", ACV_ARG_STR, &o.schedule, "NAME", "learning-rate schedule: cosine, step or constant"},
        {"--weight-decay", ACV_ARG_FLOAT, &o.weight_decay, "F", "weight decay (not applied to biases and norm weights)"},
        {"--warmup", ACV_ARG_FLOAT, &o.warmup_epochs, "EPOCHS", "linear warmup length in epochs (default 1)"},
        {"--label-smoothing", ACV_ARG_FLOAT, &o.label_smoothing, "F", "label smoothing (default 0.1)"},
        {"--val-split", ACV_ARG_FLOAT, &o.val_split, "F", "validation fraction when the data has no val/ (default 0.1)"},
        {"--ema", ACV_ARG_FLOAT, &o.ema_decay, "F", "EMA decay of the weights, 0 to disable (default 0.9999)"},
        {"--clip", ACV_ARG_FLOAT, &o.clip_norm, "F", "clip the gradient norm at F (default off)"},
        {"--patience", ACV_ARG_INT, &o.patience, "N", "stop early after N epochs without a better val top-1 (default off)"},
        {"--hflip", ACV_ARG_FLOAT, &o.hflip, "P", "horizontal flip probability (auto: 0.5, 0 for digits)"},
        {"--erase", ACV_ARG_FLOAT, &o.erase_p, "P", "random erasing probability (auto: 0.25 for small images)"},
        {"--pad-crop", ACV_ARG_INT, &o.pad_crop, "N", "pad N pixels and random-crop back (auto for small images)"},
        {"--rrc", ACV_ARG_FLOAT, &o.rrc_min, "F", "random-resized-crop minimum area (auto: 0.25 above 64 px, off below)"},
        {"--mixup", ACV_ARG_FLOAT, &o.mixup, "ALPHA", "mixup alpha (default off)"},
        {"--cutmix", ACV_ARG_FLOAT, &o.cutmix, "ALPHA", "cutmix alpha (default off)"},
        {"--seed", ACV_ARG_INT, &seed, "N", "random seed (default 0): same seed and threads give the same weights"},
        {"--threads", ACV_ARG_INT, &o.threads, "N", "compute threads (default: all cores)"},
        {"--workers", ACV_ARG_INT, &o.workers, "N", "data loading threads (default: min(4, cores))"},
        {"--log-every", ACV_ARG_INT, &o.log_every, "N", "JSON step events every N steps (default 20)"},
        {"--resume", ACV_ARG_FLAG, &resume, NULL, "continue from DIR/checkpoint.safetensors"},
        {"--json", ACV_ARG_FLAG, &json, NULL, "JSON lines on stdout instead of the progress bar"},
    };
    int rc = acv_args_parse("train", USAGE, argc, argv, defs, (int)(sizeof defs / sizeof defs[0]), NULL, NULL);
    if (rc) return rc > 0 ? 0 : 2;
    if (strcmp(task, "cls")) return acv_cli_fail("train", "--task %s is not supported (cls, det)", task);
    if (!o.data) return acv_cli_fail("train", "--data PATH is required");
    if (!o.out) return acv_cli_fail("train", "--out DIR is required");
    if (o.epochs < 0) return acv_cli_fail("train", "--epochs must be positive (got %d)", o.epochs);
    if (o.batch < 0) return acv_cli_fail("train", "--batch must be positive (got %d)", o.batch);
    if (o.imgsz < 0) return acv_cli_fail("train", "--imgsz must be positive (got %d)", o.imgsz);
    if (o.threads < 0 || o.threads > 1024) return acv_cli_fail("train", "--threads %d is not in 0..1024", o.threads);
    if (o.workers < 0 || o.workers > 64) return acv_cli_fail("train", "--workers %d is not in 0..64", o.workers);
    if (seed < 0) return acv_cli_fail("train", "--seed must be >= 0");
    if (strcmp(o.optimizer, "sgd") && strcmp(o.optimizer, "adamw"))
        return acv_cli_fail("train", "--optimizer %s is unknown (sgd or adamw)", o.optimizer);
    if (freeze && !o.init) return acv_cli_fail("train", "--freeze-backbone needs --init MODEL");
    if (o.init && strcmp(o.model, "auto")) return acv_cli_fail("train", "--init and --model are exclusive: the architecture comes from --init");
    o.freeze_backbone = freeze;
    o.seed = (uint64_t)seed;
    o.resume = resume;
    o.json = json;
    rc = acv_cls_train(&o);
    return rc ? acv_cli_error("train", rc) : 0;
}
