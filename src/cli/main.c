/* autocv: the command-line entry point. One file per verb (cmd_*.c); this table lists them. */
#include <stdio.h>
#include <string.h>

#include "autocv/version.h"
#include "cli/args.h"

int acv_cmd_train(int argc, char **argv);
int acv_cmd_eval(int argc, char **argv);
int acv_cmd_eval_detections(int argc, char **argv);
int acv_cmd_predict(int argc, char **argv);
int acv_cmd_infer(int argc, char **argv);
int acv_cmd_bench(int argc, char **argv);
int acv_cmd_serve(int argc, char **argv);
int acv_cmd_import(int argc, char **argv);
int acv_cmd_export(int argc, char **argv);
int acv_cmd_dataset(int argc, char **argv);

static const acv_cmd COMMANDS[] = {
    {"train", "train a model on a dataset (progress bar, or JSON lines with --json)", "", acv_cmd_train},
    {"eval", "evaluate a model directory on a dataset split", "", acv_cmd_eval},
    {"eval-detections", "score a COCO detection results file against COCO ground truth", "", acv_cmd_eval_detections},
    {"predict", "classify images with a model directory", "", acv_cmd_predict},
    {"infer", "run the raw network on a .npy tensor", "", acv_cmd_infer},
    {"import", "make a model directory from an ONNX file", "", acv_cmd_import},
    {"export", "write a model directory as an ONNX file", "", acv_cmd_export},
    {"dataset", "convert detection datasets (COCO, YOLO, VOC) and count their labels", "", acv_cmd_dataset},
    {"bench", "measure inference latency, throughput and memory", "", acv_cmd_bench},
    {"serve", "run the platform server (HTTP API, users, projects, labels)", "", acv_cmd_serve},
};

static void usage(FILE *f)
{
    fprintf(f, "autocv %s — computer vision for industrial inspection\n\n"
               "usage: autocv COMMAND [options]   (autocv COMMAND --help for its options)\n\ncommands:\n",
            AUTOCV_VERSION);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-16s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "\n  --help     show this help\n  --version  print the version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("autocv %s\n", AUTOCV_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "autocv: unknown command '%s' (see autocv --help)\n", argv[1]);
    return 2;
}
