#!/usr/bin/env python3
"""Predict over HTTP (issue 5, "Deployment", acceptance 2): `autocv serve` on loopback with a
temporary data directory, one classifier deployed, a JPEG sent per request (raw image/jpeg
body) by C concurrent clients (Python threads, one keep-alive socket each, the request prebuilt)
for S seconds; requests/s and p50/p99 latency, the server's own time split (decode, preprocess,
inference), and beside them the same model's `autocv bench --batch 1` latency, so that the
server's overhead is visible:

    overhead = (client p50 - model p50) / model p50      (decode + preprocess + transport + JSON)

measured with 1 client (target < 10% at batch 1), and the same with the server-reported total.
The 1-client figure is taken in --rounds rounds, each an `autocv bench` run (the server idle)
followed by an HTTP run, and the median round is reported: on a shared or throttled machine the
speed drifts over a minute by more than the overhead being measured.

The model: --model DIR (a model directory), or by default a zoo network with random weights
written by bench/make_model.c (built here against BUILD/libautocv.a, as bench/run.sh does):
--arch resnet18 --imgsz 224 --classes 1000. The model is recorded in the repository tables
directly (sqlite3) and deployed with POST /api/v1/deployments.

Usage: serve_predict.py [--build build] [--model DIR | --arch resnet18 --imgsz 224]
                        [--clients 4] [--seconds 10] [--rounds 5] [--replicas 1] [--jpeg 640x480]
                        [--out FILE.json]
Takes about three minutes with the defaults. Not part of `make test`; `make bench` runs it briefly."""
import argparse
import io
import json
import os
import random
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_OVERHEAD = 0.10


def pct(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(p * (len(s) - 1)))))]


def sh(*cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if p.returncode:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(map(str, cmd)), p.returncode, p.stderr[-2000:]))
    return p.stdout


def make_model(build, arch, imgsz, classes, out):
    """A model directory of zoo network arch with random weights (bench/make_model.c)."""
    exe = os.path.join(build, "bench", "bin", "make_model")
    lib = os.path.join(build, "libautocv.a")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(lib):
        os.makedirs(os.path.dirname(exe), exist_ok=True)
        rel = os.path.relpath(build, ROOT)
        cflags = sh("make", "-s", "--no-print-directory", "BUILD=" + rel, "print-cflags", cwd=ROOT).split()
        ldlibs = sh("make", "-s", "--no-print-directory", "BUILD=" + rel, "print-ldlibs", cwd=ROOT).split()
        cflags = [f for f in cflags if f != "-Werror"]
        sh(os.environ.get("CC", "cc"), *cflags, os.path.join(ROOT, "bench", "make_model.c"), lib, *ldlibs, "-o", exe,
           cwd=ROOT)
    sh(exe, arch, imgsz, 3, classes, out)
    return out


def make_jpeg(w, h, seed=1):
    """A photo-like JPEG (smooth gradients, a few shapes, mild noise; quality 90)."""
    from PIL import Image, ImageDraw
    rng = random.Random(seed)
    im = Image.new("RGB", (w, h))
    px = im.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = (int(255 * x / w), int(255 * y / h), 128 + rng.randint(-12, 12))
    d = ImageDraw.Draw(im)
    for _ in range(12):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        d.ellipse([x0, y0, x0 + rng.randrange(20, w // 3), y0 + rng.randrange(20, h // 3)],
                  fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def register(data_dir, model_dir, name):
    """Copies the model to DATA/models/1/1 and records it as version 1 of model name."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    db = sqlite3.connect(os.path.join(data_dir, "autocv.db"), timeout=30)
    mid = db.execute("INSERT INTO models(name, task, created_at, updated_at) VALUES (?, 'cls', ?, ?)",
                     (name, now, now)).lastrowid
    rel = "models/%d/1" % mid
    shutil.copytree(model_dir, os.path.join(data_dir, rel))
    db.execute("INSERT INTO model_versions(model_id, version, task, source, dir, created_at) "
               "VALUES (?, 1, 'cls', 'upload', ?, ?)", (mid, rel, now))
    db.commit()
    db.close()


def load(port, token, dep_id, jpeg, clients, seconds):
    """clients threads posting jpeg for seconds; returns (wall s, [client ms], [server time_ms])."""
    path = "/api/v1/deployments/%d/predict?topk=5" % dep_id
    lats, server, errors = [[] for _ in range(clients)], [[] for _ in range(clients)], []
    go = threading.Barrier(clients + 1)

    def work(i):
        # a raw keep-alive socket with the request prebuilt, so that the client's own cost (building
        # and parsing HTTP in Python) stays out of the figure as far as it can
        req = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: image/jpeg\r\n"
               "Content-Length: %d\r\n\r\n" % (path, token, len(jpeg))).encode() + jpeg
        s = socket.create_connection(("127.0.0.1", port), timeout=120)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        try:
            go.wait()
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                s.sendall(req)
                while b"\r\n\r\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise RuntimeError("predict: the server closed the connection")
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                if not m:
                    raise RuntimeError("predict: no Content-Length in %r" % head[:300])
                n = int(m.group(1))
                while len(buf) < n:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise RuntimeError("predict: the server closed the connection")
                    buf += chunk
                body, buf = buf[:n], buf[n:]
                lats[i].append((time.perf_counter() - t0) * 1e3)
                status = int(head.split(b" ", 2)[1])
                if status != 200:
                    raise RuntimeError("predict: %d %s" % (status, body[:300]))
                server[i].append(json.loads(body)["time_ms"])
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            s.close()

    ts = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for t in ts:
        t.start()
    go.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return wall, [x for l in lats for x in l], [x for l in server for x in l]


def summary(wall, lat, srv_t):
    med = lambda k: statistics.median(t[k] for t in srv_t)  # noqa: E731
    return {"requests": len(lat), "requests_per_s": len(lat) / wall,
            "latency_ms": {"p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "mean": statistics.fmean(lat)},
            "server_ms_p50": {k: med(k) for k in ("decode", "preprocess", "inference", "total")}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--model", help="a model directory (default: --arch with random weights)")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--imgsz", type=int, default=224)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients of the second round (default 4)")
    ap.add_argument("--replicas", type=int, default=0, help="the deployment's threads (default: --clients, "
                                                            "at most the cores)")
    ap.add_argument("--seconds", type=float, default=10, help="length of each HTTP round (default 10)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds of `autocv bench` and one HTTP "
                                                          "client; the median round is reported (default 5)")
    ap.add_argument("--bench-seconds", type=float, default=5, help="autocv bench's time budget (default 5)")
    ap.add_argument("--jpeg", default="640x480", help="size of the JPEG sent (default 640x480)")
    ap.add_argument("--out", help="write the figures as JSON here")
    a = ap.parse_args()
    build = os.path.abspath(os.path.join(ROOT, a.build))
    exe = os.path.join(build, "autocv")
    if not os.path.exists(exe):
        sys.exit("serve_predict: %s is missing: build first (make BUILD=%s)" % (exe, a.build))
    os.environ["AUTOCV_BUILD"] = build
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    from server import Server  # the integration tests' fixture: free port, temporary --data

    tmp = tempfile.mkdtemp(prefix="autocv-serve-bench-")
    srv = None
    try:
        if a.model:
            model, what = a.model, a.model
        else:
            model = make_model(build, a.arch, a.imgsz, a.classes, os.path.join(tmp, "model"))
            what = "%s %dx%d, %d classes (random weights)" % (a.arch, a.imgsz, a.imgsz, a.classes)
        w, h = (int(v) for v in a.jpeg.lower().split("x"))
        jpeg = make_jpeg(w, h)

        srv = Server(["--no-access-log"]).start()
        token = srv.admin_token()
        register(srv.data, model, "bench-model")
        replicas = a.replicas or max(1, min(a.clients, os.cpu_count() or 1))
        # one replica (all compute threads) for the 1-client rounds, the latency a lone camera sees
        r = srv.request("POST", "/api/v1/deployments", token, {"model": "bench-model", "threads": 1})
        if r.status != 201:
            raise RuntimeError("deploy: %r" % r)
        dep = r.json()["id"]
        load(srv.port, token, dep, jpeg, 1, 1.0)  # warm-up

        # rounds alternate the model alone (`autocv bench`, the server idle) and one HTTP client, so
        # that a drift of the machine's speed touches both sides of each round's ratio alike
        rounds = []
        for k in range(a.rounds):
            b = json.loads(sh(exe, "bench", "--model", model, "--batch", 1, "--seconds", a.bench_seconds,
                              "--json", cwd=ROOT).strip().splitlines()[-1])
            one = summary(*load(srv.port, token, dep, jpeg, 1, a.seconds))
            mp = b["latency_ms"]["p50"]
            rounds.append({"autocv_bench": {"p50_ms": mp, "p99_ms": b["latency_ms"]["p99"]}, "one_client": one,
                           "overhead": (one["latency_ms"]["p50"] - mp) / mp,
                           "overhead_server": (one["server_ms_p50"]["total"] - mp) / mp})
            print("round %d/%d: autocv bench p50 %.2f ms, HTTP 1 client p50 %.2f ms: overhead %+.1f%%"
                  % (k + 1, a.rounds, mp, one["latency_ms"]["p50"], 100 * rounds[-1]["overhead"]), flush=True)
        many = None
        if a.clients > 1:
            # replicas for the concurrent round, each with its share of the threads
            r = srv.request("PATCH", "/api/v1/deployments/%d" % dep, token, {"threads": replicas})
            if r.status != 200:
                raise RuntimeError("redeploy: %r" % r)
            load(srv.port, token, dep, jpeg, a.clients, 1.0)  # warm-up
            many = summary(*load(srv.port, token, dep, jpeg, a.clients, a.seconds))
        stats = srv.request("GET", "/api/v1/deployments/%d" % dep, token).json()["stats"]
    finally:
        if srv:
            srv.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)

    mid = sorted(rounds, key=lambda r: r["overhead"])[len(rounds) // 2]  # the median round
    one, model_p50 = mid["one_client"], mid["autocv_bench"]["p50_ms"]
    over_client, over_server = mid["overhead"], mid["overhead_server"]
    res = {"model": what, "jpeg": {"width": w, "height": h, "bytes": len(jpeg)}, "replicas": replicas,
           "threads": b["threads"], "rounds": rounds, "median_round": rounds.index(mid) + 1,
           "autocv_bench": mid["autocv_bench"], "one_client": one, "clients": a.clients, "many_clients": many,
           "overhead": {"client_p50_vs_model": over_client, "server_total_vs_model": over_server,
                        "per_round": [r["overhead"] for r in rounds],
                        "target": TARGET_OVERHEAD, "met": over_client < TARGET_OVERHEAD},
           "server_stats": stats}
    print("model: %s; JPEG %dx%d (%d bytes) per request; %d compute threads; 1 replica for 1 client, %d for %d"
          % (what, w, h, len(jpeg), b["threads"], replicas, a.clients))
    print("median of %d rounds (round %d):" % (len(rounds), res["median_round"]))
    print("%-28s %9s %9s %9s %9s" % ("", "req/s", "p50 ms", "p99 ms", "mean ms"))
    print("%-28s %9s %9.2f %9.2f %9s" % ("autocv bench --batch 1", "", model_p50, mid["autocv_bench"]["p99_ms"], ""))
    for name, s in (("HTTP predict, 1 client", one), ("HTTP predict, %d clients" % a.clients, many)):
        if s:
            print("%-28s %9.1f %9.2f %9.2f %9.2f" % (name, s["requests_per_s"], s["latency_ms"]["p50"],
                                                     s["latency_ms"]["p99"], s["latency_ms"]["mean"]))
    t = one["server_ms_p50"]
    print("server time (1 client, p50 ms): decode %.2f, preprocess %.2f, inference %.2f, total %.2f"
          % (t["decode"], t["preprocess"], t["inference"], t["total"]))
    print("in the median round: server work besides inference %.2f ms (%.1f%% of model time), transport and the "
          "client %.2f ms, in-server inference %+.1f%% against autocv bench"
          % (t["total"] - t["inference"], 100 * (t["total"] - t["inference"]) / model_p50,
             one["latency_ms"]["p50"] - t["total"], 100 * (t["inference"] - model_p50) / model_p50))
    print("HTTP overhead at batch 1: client p50 %+.1f%% of model time (server-reported total %+.1f%%); "
          "target < %d%%: %s" % (100 * over_client, 100 * over_server, 100 * TARGET_OVERHEAD,
                                 "met" if res["overhead"]["met"] else "NOT met"))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
