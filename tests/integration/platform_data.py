"""Real data for the model-side server tests: a few hundred Fashion-MNIST images (Debian's
dataset-fashion-mnist) as PNG files, imported into a project through the API, reviewed and
snapshot as a dataset version — the state a training job starts from."""
import gzip
import io
import os
import struct
import zipfile

from helpers import png_bytes
from routes_images import multipart

FMNIST = "/usr/share/datasets/fashion-mnist"
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def fmnist(split="train", count=300, offset=0):
    """[(class index, png bytes)] of `count` images starting at `offset` of a split."""
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(os.path.join(FMNIST, prefix + "-images-idx3-ubyte.gz")) as f:
        data = f.read()
    with gzip.open(os.path.join(FMNIST, prefix + "-labels-idx1-ubyte.gz")) as f:
        labels = f.read()[8:]
    _, n, h, w = struct.unpack(">IIII", data[:16])
    out = []
    for i in range(offset, offset + count):
        px = data[16 + i * h * w:16 + (i + 1) * h * w]
        out.append((labels[i], png_bytes(w, h, px, channels=1)))
    return out


def imagefolder_zip(samples, root="fmnist"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, (c, png) in enumerate(samples):
            z.writestr("%s/%s/img%05d.png" % (root, CLASSES[c], i), png)
    return buf.getvalue()


def import_reviewed_version(srv, token, pid, samples, name="fmnist v1", split=None, seed=0):
    """Imports samples as an ImageFolder archive, accepts every item, snapshots a version
    (none when name is None: the browser makes it); returns (set id, version object or None)."""
    body, ct = multipart([("fmnist.zip", imagefolder_zip(samples))])
    r = srv.request("POST", "/api/v1/projects/%d/imports" % pid, token, data=body, content_type=ct, timeout=120)
    assert r.status == 201, r
    sid = r.json()["set_id"]
    while True:
        q = srv.request("GET", "/api/v1/annotation-sets/%d/review-queue?limit=1000" % sid, token).json()
        if not q["items"]:
            break
        for it in q["items"]:
            r = srv.request("POST", "/api/v1/annotation-sets/%d/items/%d/review" % (sid, it["image_id"]), token,
                            {"decision": "accept", "revision": it["revision"]}, keepalive=True)
            assert r.status == 200, r
    if name is None:
        return sid, None
    r = srv.request("POST", "/api/v1/annotation-sets/%d/versions" % sid, token,
                    {"name": name, "split": split or {"train": 0.7, "val": 0.15, "test": 0.15}, "seed": seed})
    assert r.status == 201, r
    return sid, r.json()


def sse_events(srv, token, path, timeout=600, headers=None):
    """Reads a server-sent event stream to its end: [(id, event, data dict)]."""
    import http.client
    import json
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    h = {"Authorization": "Bearer " + token, "Accept": "text/event-stream"}
    h.update(headers or {})
    conn.request("GET", path, headers=h)
    r = conn.getresponse()
    assert r.status == 200, (r.status, r.read())
    assert r.getheader("Content-Type").startswith("text/event-stream")
    events, cur = [], {}
    for raw in r:
        line = raw.decode().rstrip("\n")
        if not line:
            if "data" in cur:
                events.append((int(cur.get("id", 0)), cur.get("event", "message"), json.loads(cur["data"])))
            cur = {}
            continue
        if line.startswith(":"):
            continue
        k, _, v = line.partition(": ")
        cur[k] = v
    conn.close()
    return events
