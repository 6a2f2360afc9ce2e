#!/usr/bin/env bash
# make bench: AutoCV against PyTorch (CPU) and ONNX Runtime, all measured in this one run
# on this machine with the same thread count; see bench/README.md for the method.
#
# Environment (all optional):
#   BUILD=build            the build folder holding autocv and libautocv.a (as the Makefile)
#   BENCH_THREADS=2        threads for every engine
#   BENCH_ROUNDS=5         rounds; each round measures every engine once per benchmark
#   BENCH_MAX_SECONDS=420  no new round starts after this many seconds (round 1 always runs)
#   PY=/usr/bin/python3    Debian's interpreter, the one with python3-torch
# Output: the engine table on stdout, $BUILD/bench/results.json, raw outputs in $BUILD/bench/raw/;
# then the server table (bench/server_bench.py) and $BUILD/bench/server.json, the predict-over-HTTP
# table (bench/serve_predict.py) and $BUILD/bench/serve_predict.json, then the detection
# table (bench/det_bench.py --quick) and $BUILD/bench/det/det.json.
set -u
cd "$(dirname "$0")/.." || exit 1

BUILD=${BUILD:-build}
THREADS=${BENCH_THREADS:-2}
ROUNDS=${BENCH_ROUNDS:-5}
MAX_SECONDS=${BENCH_MAX_SECONDS:-420}
PY=${PY:-/usr/bin/python3}
CC=${CC:-cc}
OUT=$BUILD/bench
RAW=$OUT/raw
# compile and link flags come from the Makefile, so the bench links what autocv links
LIB_CFLAGS=$(make -s --no-print-directory print-cflags | sed "s/-Werror//")
LIB_LDLIBS=$(make -s --no-print-directory print-ldlibs)

export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

if [ ! -x "$BUILD/autocv" ] || [ ! -f "$BUILD/libautocv.a" ]; then
    die "$BUILD/autocv or $BUILD/libautocv.a is missing: run make first"
fi
rm -rf "$RAW" "$OUT/onnx" "$OUT/results.json"
mkdir -p "$OUT/bin" "$OUT/models" "$OUT/onnx" "$RAW" || die "cannot create $OUT"
T_START=$SECONDS
cut -d' ' -f1-3 /proc/loadavg > "$RAW/load_start"

# ---- AutoCV: the two helper programs, built with the Makefile's flags ---------------------
for p in bench_train make_model; do
    # shellcheck disable=SC2086  # the flags are meant to split into words
    $CC $LIB_CFLAGS "bench/$p.c" "$BUILD/libautocv.a" \
        $LIB_LDLIBS -o "$OUT/bin/$p" ||
        die "building bench/$p.c failed"
done
for m in resnet18 mobilenetv2; do
    "$OUT/bin/make_model" "$m" 224 3 1000 "$OUT/models/$m" || die "make_model $m failed"
done

# ---- PyTorch ------------------------------------------------------------------------------
TORCH_NA=""
if ! err=$("$PY" -c 'import torch, torchvision' 2>&1); then
    TORCH_NA="PyTorch not importable by $PY: $(echo "$err" | tail -n1)"
    note "$TORCH_NA"
fi

# ---- ONNX Runtime (npm onnxruntime-node, installed without install scripts) ---------------
ORT_NA=""
if ! command -v node >/dev/null 2>&1; then
    ORT_NA="node is not installed"
elif [ ! -d bench/node_modules/onnxruntime-node ]; then
    if ! command -v npm >/dev/null 2>&1; then
        ORT_NA="npm is not installed"
    else
        note "installing onnxruntime-node into bench/node_modules (npm install --ignore-scripts)"
        if ! (cd bench && npm install --ignore-scripts --no-audit --no-fund) > "$OUT/npm.log" 2>&1; then
            ORT_NA="npm install failed: $(grep -m1 -i 'err' "$OUT/npm.log" || tail -n1 "$OUT/npm.log")"
        fi
    fi
fi
if [ -z "$ORT_NA" ] && [ -n "$TORCH_NA" ]; then
    ORT_NA="no ONNX files: they are exported by PyTorch, which is not available"
fi
if [ -z "$ORT_NA" ]; then
    if ! "$PY" bench/torch_bench.py export "$OUT/onnx" > "$RAW/export.out" 2> "$RAW/export.err"; then
        ORT_NA="ONNX export failed: $(grep -v '^\s*$' "$RAW/export.err" | tail -n1)"
    fi
fi
[ -n "$ORT_NA" ] && note "ONNX Runtime: n/a ($ORT_NA)"
printf '%s' "$TORCH_NA" > "$RAW/torch_na"
printf '%s' "$ORT_NA" > "$RAW/ort_na"

# ---- measurements -------------------------------------------------------------------------
# cpu_jiffies: "BUSY TOTAL" of the whole machine from /proc/stat (steal counts as busy).
cpu_jiffies() {
    local _c u n s i w q sq st
    read -r _c u n s i w q sq st _ < /proc/stat
    echo $((u + n + s + q + sq + st)) $((u + n + s + i + w + q + sq + st))
}
# children_cs FILE: CPU time (user + system, centiseconds) of this shell's finished
# children, from the `times` output saved in FILE.
children_cs() {
    awk 'NR == 2 { split($1, a, /[ms]/); split($2, b, /[ms]/);
                   printf "%d\n", (a[1] * 60 + a[2] + b[1] * 60 + b[2]) * 100 + 0.5 }' "$1"
}

# measure ROUND BENCH ENGINE CMD...: runs CMD (10 min at most), keeping its stdout, stderr and
# exit status under $RAW/ROUND.BENCH.ENGINE.*, with the 1-minute load average before it
# (.load) and the share of the machine's CPU (all cores, steal included) that other
# processes used while it ran (.foreign): the noise it was measured under.
measure() {
    local f="$RAW/$1.$2.$3" b0 t0 b1 t1 c0 c1
    shift 3
    cut -d' ' -f1 /proc/loadavg > "$f.load"
    times > "$f.times"
    c0=$(children_cs "$f.times")
    read -r b0 t0 < <(cpu_jiffies)
    timeout 600 "$@" > "$f.out" 2> "$f.err"
    echo $? > "$f.rc"
    read -r b1 t1 < <(cpu_jiffies)
    times > "$f.times"
    c1=$(children_cs "$f.times")
    awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) -v c=$((c1 - c0)) \
        'BEGIN { x = t > 0 ? (b - c) / t : 0; printf "%.3f\n", x < 0 ? 0 : x }' > "$f.foreign"
    rm -f "$f.times"
}

# run_bench ROUND BENCH: every engine once, AutoCV first in odd rounds and last in even ones,
# so that a drift in machine speed does not favour one side.
run_bench() {
    local r=$1 b=$2 engines="autocv pytorch onnxruntime" e net batch
    # infer_NET_bB: network NET at batch B
    net=${b#infer_}
    net=${net%_b*}
    batch=${b##*_b}
    [ $((r % 2)) -eq 0 ] && engines="onnxruntime pytorch autocv"
    for e in $engines; do
        case "$e:$b" in
        autocv:train_resnet18)
            measure "$r" "$b" "$e" "$OUT/bin/bench_train" --model resnet18 --imgsz 64 --channels 3 --batch 32 \
                --classes 10 --warmup 2 --steps 20 --seconds 8 --threads "$THREADS" ;;
        autocv:train_compact)
            measure "$r" "$b" "$e" "$OUT/bin/bench_train" --model compact --imgsz 28 --channels 1 --batch 64 \
                --classes 10 --warmup 2 --steps 40 --seconds 5 --threads "$THREADS" ;;
        autocv:infer_*)
            # the same .onnx file ONNX Runtime runs, when PyTorch could export it
            local m="$OUT/models/$net"
            [ -f "$OUT/onnx/$net.onnx" ] && m="$OUT/onnx/$net.onnx"
            measure "$r" "$b" "$e" "$BUILD/autocv" bench --model "$m" --batch "$batch" \
                --threads "$THREADS" --seconds 3 --json ;;
        pytorch:train_resnet18)
            [ -z "$TORCH_NA" ] && measure "$r" "$b" "$e" "$PY" bench/torch_bench.py train --model resnet18 \
                --imgsz 64 --channels 3 --batch 32 --classes 10 --warmup 2 --steps 20 --seconds 8 --threads "$THREADS" ;;
        pytorch:train_compact)
            [ -z "$TORCH_NA" ] && measure "$r" "$b" "$e" "$PY" bench/torch_bench.py train --model compact \
                --imgsz 28 --channels 1 --batch 64 --classes 10 --warmup 2 --steps 40 --seconds 5 --threads "$THREADS" ;;
        pytorch:infer_*_b1)
            # PyTorch is timed at batch 1 only (the batch-8 rows compare AutoCV with ONNX Runtime)
            [ -z "$TORCH_NA" ] && measure "$r" "$b" "$e" "$PY" bench/torch_bench.py infer --model "$net" \
                --seconds 3 --threads "$THREADS" ;;
        onnxruntime:infer_*)
            [ -z "$ORT_NA" ] && measure "$r" "$b" "$e" node bench/ort_bench.js "$OUT/onnx/$net.onnx" \
                --batch "$batch" --threads "$THREADS" --seconds 3 ;;
        esac
    done
}

r=1
while [ "$r" -le "$ROUNDS" ]; do
    if [ "$r" -gt 1 ] && [ $((SECONDS - T_START)) -ge "$MAX_SECONDS" ]; then
        note "stopping after $((r - 1)) rounds: the $MAX_SECONDS s budget is spent"
        break
    fi
    note "round $r/$ROUNDS ($((SECONDS - T_START)) s so far, load $(cut -d' ' -f1 /proc/loadavg))"
    for b in train_resnet18 train_compact infer_resnet18_b1 infer_mobilenetv2_b1 infer_resnet18_b8 \
        infer_mobilenetv2_b8; do
        run_bench "$r" "$b"
    done
    r=$((r + 1))
done
cut -d' ' -f1-3 /proc/loadavg > "$RAW/load_end"
echo $((SECONDS - T_START)) > "$RAW/elapsed"

command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" bench/report.py --raw "$RAW" --out "$OUT/results.json" --threads "$THREADS"
rc=$?

# ---- the platform server (autocv serve on loopback; about 25 s) ----------------------------
note "server: uploads, annotation saves, label search, idle memory"
"$PY" bench/server_bench.py --build "$BUILD" --out "$OUT/server.json" 2> "$RAW/server.err" ||
    { note "server bench failed: $(tail -n 3 "$RAW/server.err")"; [ "$rc" -eq 0 ] && rc=1; }

# ---- predict over HTTP against the model alone (one deployed ResNet-18; about 1 min) --------
note "server: predict over HTTP, overhead against autocv bench"
"$PY" bench/serve_predict.py --build "$BUILD" --jpeg 224x224 --seconds 5 --bench-seconds 3 --rounds 5 \
    --clients 4 --out "$OUT/serve_predict.json" 2> "$RAW/serve_predict.err" ||
    { note "predict bench failed: $(tail -n 3 "$RAW/serve_predict.err")"; [ "$rc" -eq 0 ] && rc=1; }

# ---- detection: training throughput, latency at 320 and 640 against ONNX Runtime (~3 min) --
# (the full accuracy benchmark, 1,000 images trained to the end, is bench/det_bench.py without --quick)
note "detection: training images/s, latency at 320 and 640 vs ONNX Runtime"
"$PY" bench/det_bench.py --build "$BUILD" --quick --threads "$THREADS" 2> "$RAW/det.err" ||
    { note "detection bench failed: $(tail -n 3 "$RAW/det.err")"; [ "$rc" -eq 0 ] && rc=1; }
exit "$rc"
