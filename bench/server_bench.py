#!/usr/bin/env python3
"""The platform server's figures (issue 3), with `autocv serve` on loopback and a temporary
data directory: image uploads per second (1 MB JPEGs), annotation saves per second with 8
concurrent clients, label search latency at 10,000 labels, and the server's idle resident
memory after start and after the load. Prints a table (targets: label search p99 < 20 ms,
idle RSS < 50 MB) and writes the figures as JSON. See bench/README.md.

Usage: server_bench.py [--build build] [--out FILE.json] [--seconds 5]
Clients are Python threads with one keep-alive connection each (http.client); the server
runs its default configuration (access log on, written to a file). Exit status 0 when it ran,
whether or not the targets were met; 1 when the server could not be measured."""
import argparse
import http.client
import io
import json
import os
import random
import statistics
import sys
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W, H = 64, 48  # the annotated images
PASSWORD = "bench-password-123"
TARGET_SEARCH_P99_MS = 20.0
TARGET_IDLE_RSS_MB = 50.0


def pct(xs, p):
    """The p-quantile (nearest rank) of xs."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(p * (len(s) - 1)))))]


def make_jpegs(n, side, quality, seed):
    """n distinct noise JPEGs of side x side (about 1 MB each at quality 92 for 1000 x 1000),
    encoded by torchvision, else by Pillow. Returns (list of bytes, encoder name) or raises
    ImportError when neither is importable."""
    try:
        import torch
        from torchvision.io import encode_jpeg
        g = torch.Generator().manual_seed(seed)
        return [bytes(encode_jpeg(torch.randint(0, 256, (3, side, side), dtype=torch.uint8, generator=g),
                                  quality=quality).numpy()) for _ in range(n)], "torchvision.io.encode_jpeg"
    except ImportError:
        from PIL import Image
        rng = random.Random(seed)
        out = []
        for _ in range(n):
            buf = io.BytesIO()
            Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)).save(buf, "JPEG", quality=quality)
            out.append(buf.getvalue())
        return out, "Pillow"


class Client:
    """One keep-alive connection with a token (one per thread)."""

    def __init__(self, port, token):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.token = token

    def call(self, method, path, body=None, content_type="application/json"):
        h = {"Authorization": "Bearer " + self.token}
        if body is not None:
            if not isinstance(body, bytes):
                body = json.dumps(body).encode()
            h["Content-Type"] = content_type
        self.conn.request(method, path, body=body, headers=h)
        r = self.conn.getresponse()
        data = r.read()
        return r.status, data

    def ok(self, method, path, body=None, content_type="application/json", status=(200, 201)):
        st, data = self.call(method, path, body, content_type)
        if st not in status:
            raise RuntimeError("%s %s: %d %s" % (method, path, st, data[:300].decode(errors="replace")))
        return json.loads(data) if data else None

    def close(self):
        self.conn.close()


def run_threads(fns):
    """Runs each fn in its own thread, all released together; returns (wall seconds, results);
    re-raises the first error."""
    out, errs = [None] * len(fns), []
    go = threading.Barrier(len(fns) + 1)

    def wrap(i, fn):
        try:
            go.wait()
            out[i] = fn()
        except Exception as e:  # reported by the caller
            errs.append(e)

    ts = [threading.Thread(target=wrap, args=(i, f), daemon=True) for i, f in enumerate(fns)]
    for t in ts:
        t.start()
    go.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    if errs:
        raise errs[0]
    return wall, out


def bench_uploads(srv, admin, pid, jpegs, clients):
    """Each client uploads its share of jpegs, one image per request (multipart)."""
    from routes_images import multipart
    shares = [jpegs[i::clients] for i in range(clients)]

    def work(share):
        c = Client(srv.port, admin)
        lat = []
        for k, data in enumerate(share):
            body, ct = multipart([("noise%d.jpg" % k, data)])
            t0 = time.perf_counter()
            res = c.ok("POST", "/api/v1/projects/%d/images" % pid, body, ct)
            lat.append(time.perf_counter() - t0)
            if res["errors"] or res["images"][0]["duplicate"]:
                raise RuntimeError("upload refused or deduplicated: %r" % res)
        c.close()
        return lat

    wall, lats = run_threads([lambda s=s: work(s) for s in shares])
    lat = [x for l in lats for x in l]
    mb = sum(len(j) for j in jpegs) / 1e6
    return {"clients": clients, "images": len(jpegs), "mean_size_mb": mb / len(jpegs), "seconds": wall,
            "images_per_s": len(jpegs) / wall, "mb_per_s": mb / wall,
            "latency_ms": {"p50": 1000 * pct(lat, 0.5), "p99": 1000 * pct(lat, 0.99)}}


def bench_saves(srv, admin, pid, clients, seconds):
    """clients annotators, each saving box documents to its own 8 images of a det set for
    `seconds`; every save names the revision it was based on (a 409 would be an error)."""
    from routes_images import random_png, upload
    c = Client(srv.port, admin)
    c.ok("POST", "/api/v1/projects/%d/labels" % pid, {"labels": [{"name": "scratch"}, {"name": "dent"}]})
    ids = []
    for i in range(0, clients * 8, 16):
        r = upload(srv, admin, pid, [("p%03d.png" % j, random_png(W, H, seed=9000 + j)) for j in range(i, i + 16)])
        if r.status != 201:
            raise RuntimeError("uploading the annotation images: %r" % r)
        ids += [im["id"] for im in r.json()["images"]]
    sid = c.ok("POST", "/api/v1/projects/%d/annotation-sets" % pid,
               {"name": "bench", "task": "det", "image_ids": ids})["id"]
    tokens = []
    for a in range(clients):
        u = c.ok("POST", "/api/v1/users", {"username": "bench%d" % a, "password": PASSWORD, "roles": ["annotator"]})
        c.ok("PUT", "/api/v1/projects/%d/members/%d" % (pid, u["id"]), {"role": "annotator"})
        tokens.append(srv.login("bench%d" % a, PASSWORD))
    c.close()

    def work(a):
        rng = random.Random(a)
        cl = Client(srv.port, tokens[a])
        mine = {iid: 0 for iid in ids[a * 8:(a + 1) * 8]}
        order = sorted(mine)
        lat = []
        end = time.perf_counter() + seconds
        k = 0
        while time.perf_counter() < end:
            iid = order[k % len(order)]
            k += 1
            shapes = []
            for _ in range(3):
                x, y = rng.randrange(W - 8), rng.randrange(H - 8)
                shapes.append({"type": "box", "label": rng.choice(["scratch", "dent"]), "x": x, "y": y,
                               "w": rng.randrange(1, W - x), "h": rng.randrange(1, H - y)})
            t0 = time.perf_counter()
            res = cl.ok("PUT", "/api/v1/annotation-sets/%d/items/%d" % (sid, iid),
                        {"revision": mine[iid], "shapes": shapes}, status=(200,))
            lat.append(time.perf_counter() - t0)
            mine[iid] = res["revision"]
        cl.close()
        return lat

    wall, lats = run_threads([lambda a=a: work(a) for a in range(clients)])
    lat = [x for l in lats for x in l]
    return {"clients": clients, "saves": len(lat), "seconds": wall, "saves_per_s": len(lat) / wall,
            "latency_ms": {"p50": 1000 * pct(lat, 0.5), "p99": 1000 * pct(lat, 0.99)}}


def bench_search(srv, admin, n_labels, n_queries):
    """n_labels labels (two aliases each) imported from CSV, then n_queries mixed searches
    (substrings, whole names, aliases, 1-2 character queries, misses) on one keep-alive
    connection, 50 results a page; every answer's total is checked."""
    c = Client(srv.port, admin)
    pid = c.ok("POST", "/api/v1/projects", {"name": "bench labels"})["id"]
    adjs = ["scratched", "dented", "bent", "cracked", "rusty", "chipped", "missing", "loose", "burnt", "stained",
            "warped", "pitted", "porous", "oily", "torn", "frayed", "misaligned", "faded", "foreign", "broken"]
    nouns = ["bolt", "nut", "washer", "screw", "rivet", "gear", "spring", "clip", "pin", "cap", "weld", "seam",
             "label", "cable", "hose", "panel", "lens", "tray", "housing", "flange"]
    labels = []
    for i in range(n_labels):
        a, n = adjs[i % len(adjs)], nouns[(i // len(adjs)) % len(nouns)]
        labels.append(("%s_%s_%05d" % (a, n, i), ["C%05d" % i, "%s-%s%d" % (n, a[:3], i)]))
    csv = "name,aliases\n" + "".join("%s,%s\n" % (nm, "|".join(al)) for nm, al in labels)
    t0 = time.perf_counter()
    res = c.ok("POST", "/api/v1/projects/%d/labels" % pid, csv.encode(), "text/csv")
    import_s = time.perf_counter() - t0
    if res["created"] != n_labels:
        raise RuntimeError("label import created %d of %d" % (res["created"], n_labels))
    rng = random.Random(7)
    queries = []
    while len(queries) < n_queries:
        nm, al = labels[rng.randrange(len(labels))]
        k = rng.randrange(5)
        if k == 0:
            s = rng.randrange(len(nm) - 3)
            queries.append(nm[s:s + rng.randint(3, 9)])
        elif k == 1:
            queries.append(nm)
        elif k == 2:
            queries.append(al[rng.randrange(2)][:rng.randint(3, 6)].upper())
        elif k == 3:
            queries.append(nm[rng.randrange(len(nm) - 2):][:rng.randint(1, 2)])
        else:
            queries.append("zq" + nm[:rng.randint(1, 4)])  # no match
    base = "/api/v1/projects/%d/labels?limit=50&q=" % pid
    for q in queries[:20]:  # warm-up: the page cache and the statement cache
        c.ok("GET", base + urllib.parse.quote(q))
    lat = []
    for q in queries:
        ql = q.lower()
        want = sum(1 for nm, al in labels if ql in nm.lower() or any(ql in x.lower() for x in al))
        t0 = time.perf_counter()
        page = c.ok("GET", base + urllib.parse.quote(q))
        lat.append(time.perf_counter() - t0)
        if page["total"] != want:
            raise RuntimeError("search %r: total %d, expected %d" % (q, page["total"], want))
    c.close()
    ms = [1000 * x for x in lat]
    return {"labels": n_labels, "queries": len(ms), "import_s": import_s, "p50_ms": pct(ms, 0.5),
            "p99_ms": pct(ms, 0.99), "max_ms": max(ms), "mean_ms": statistics.mean(ms)}


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def print_table(head, rows):
    table = [head] + rows
    width = [max(len(r[i]) for r in table) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.rjust(width[i]) if i == 1 else c.ljust(width[i])
                                        for i, c in enumerate(r)) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in width) + "|")
    for r in rows:
        print(line(r))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--out", default=None, help="JSON results (default BUILD/bench/server.json)")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the annotation-save phase")
    ap.add_argument("--uploads", type=int, default=40, help="1 MB JPEGs to upload")
    ap.add_argument("--upload-clients", type=int, default=4)
    ap.add_argument("--save-clients", type=int, default=8)
    ap.add_argument("--labels", type=int, default=10000)
    ap.add_argument("--queries", type=int, default=400)
    a = ap.parse_args()
    build = os.path.abspath(os.path.join(ROOT, a.build))
    out = a.out or os.path.join(build, "bench", "server.json")
    os.environ["AUTOCV_BUILD"] = build
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    from server import Server  # the integration tests' fixture: free port, temporary --data

    t_start = time.time()
    res_load = {"start": open("/proc/loadavg").read().split()[0]}
    jpegs, upload_na, encoder = None, None, None
    try:
        jpegs, encoder = make_jpegs(a.uploads, 1000, 92, seed=1)
    except ImportError as e:
        upload_na = "no JPEG encoder (torchvision or Pillow) importable by %s: %s" % (sys.executable, e)

    srv = Server()
    res = {"format": 1, "server": {}, "targets": {"search_p99_ms": TARGET_SEARCH_P99_MS,
                                                     "idle_rss_mb": TARGET_IDLE_RSS_MB}}
    try:
        srv.start()
        time.sleep(1.0)
        res["rss_mb_idle_start"] = status_kb(srv.proc.pid, "VmRSS") * 1024 / 1e6
        admin = srv.admin_token()
        c = Client(srv.port, admin)
        pid = c.ok("POST", "/api/v1/projects", {"name": "bench"})["id"]
        c.close()
        if jpegs:
            res["uploads"] = bench_uploads(srv, admin, pid, jpegs, a.upload_clients)
            res["uploads"]["encoder"] = encoder
        res["saves"] = bench_saves(srv, admin, pid, a.save_clients, a.seconds)
        res["search"] = bench_search(srv, admin, a.labels, a.queries)
        res["rss_mb_peak"] = status_kb(srv.proc.pid, "VmHWM") * 1024 / 1e6
        time.sleep(2.0)
        res["rss_mb_idle_after_load"] = status_kb(srv.proc.pid, "VmRSS") * 1024 / 1e6
        res["data_dir"] = srv.data
        rc = srv.stop()
        if rc != 0:
            raise RuntimeError("autocv serve exited with %s on SIGTERM" % rc)
    except Exception as e:
        print("server bench: failed: %s" % e, file=sys.stderr)
        try:
            print(srv.log_text()[-3000:], file=sys.stderr)
        except OSError:
            pass
        srv.cleanup()
        return 1
    srv.cleanup()
    res["elapsed_s"] = time.time() - t_start
    res_load["end"] = open("/proc/loadavg").read().split()[0]
    res["load"] = res_load

    def verdict(v, target, unit):
        return "< %g %s: %s" % (target, unit, "met" if v < target else "MISSED")

    up, sv, se = res.get("uploads"), res["saves"], res["search"]
    rows = []
    if up:
        rows.append(["image uploads, %.2f MB JPEGs, %d clients (img/s)" % (up["mean_size_mb"], up["clients"]),
                     "%.1f" % up["images_per_s"], "- (%.1f MB/s; p50 %.0f ms per upload)" %
                     (up["mb_per_s"], up["latency_ms"]["p50"])])
    else:
        rows.append(["image uploads, 1 MB JPEGs (img/s)", "n/a", "- (%s)" % upload_na])
    rows.append(["annotation saves, %d clients (saves/s)" % sv["clients"], "%.0f" % sv["saves_per_s"],
                 "- (p50 %.1f ms, p99 %.1f ms per save)" % (sv["latency_ms"]["p50"], sv["latency_ms"]["p99"])])
    rows.append(["label search p50, {:,} labels (ms)".format(se["labels"]), "%.2f" % se["p50_ms"], "-"])
    rows.append(["label search p99, {:,} labels (ms)".format(se["labels"]), "%.2f" % se["p99_ms"],
                 verdict(se["p99_ms"], TARGET_SEARCH_P99_MS, "ms")])
    rows.append(["idle RSS after start (MB)", "%.1f" % res["rss_mb_idle_start"],
                 verdict(res["rss_mb_idle_start"], TARGET_IDLE_RSS_MB, "MB")])
    rows.append(["idle RSS after the load (MB)", "%.1f" % res["rss_mb_idle_after_load"],
                 verdict(res["rss_mb_idle_after_load"], TARGET_IDLE_RSS_MB, "MB")])
    res["targets_met"] = {"search_p99": se["p99_ms"] < TARGET_SEARCH_P99_MS,
                          "idle_rss": max(res["rss_mb_idle_start"], res["rss_mb_idle_after_load"]) < TARGET_IDLE_RSS_MB}
    print()
    print("AutoCV server on loopback, temporary data dir (%s), default configuration, same run"
          % os.path.dirname(res["data_dir"]))
    print("machine: %s cores; load average %s at start, %s at end" % (os.cpu_count(), res_load["start"], res_load["end"]))
    print_table(["server benchmark", "AutoCV", "target"], rows)
    print("%d mixed label searches, 50 a page (CSV import of the labels: %.2f s); peak RSS %.1f MB during the load; "
          "server bench took %.0f s" % (se["queries"], se["import_s"], res["rss_mb_peak"], res["elapsed_s"]))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".tmp", "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    os.replace(out + ".tmp", out)
    print("results: %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
