"""Expected permissions of the model repository routes, merged into the route matrix of
test_server_core.py (see routes_images.py for the format); fill() gives the path to call for
one of them.

Also the fixtures the model tests share: tiny_onnx() writes a small classifier as ONNX bytes
with a hand-rolled protobuf encoder (standard library only, so the matrix needs neither torch
nor onnx), and upload_model() sends one to the server."""
import json
import os
import random
import sqlite3
import struct
import time

from routes_images import multipart

ENGINEER = {"engineer"}

EXPECTED = {
    ("GET", "/api/v1/models"): ("user", None),
    ("GET", "/api/v1/models/{name}"): ("user", None),
    ("PATCH", "/api/v1/models/{name}"): ("global", ENGINEER),
    ("DELETE", "/api/v1/models/{name}"): ("global", ENGINEER),
    ("GET", "/api/v1/models/{name}/versions"): ("user", None),
    ("POST", "/api/v1/models/{name}/versions"): ("global", ENGINEER),
    ("GET", "/api/v1/models/{name}/versions/{v}"): ("user", None),
    ("PATCH", "/api/v1/models/{name}/versions/{v}"): ("global", ENGINEER),
    ("DELETE", "/api/v1/models/{name}/versions/{v}"): ("global", ENGINEER),
    ("GET", "/api/v1/models/{name}/versions/{v}/download"): ("user", None),
    ("GET", "/api/v1/models/{name}/versions/{v}/export"): ("user", None),
    ("POST", "/api/v1/jobs/{id}/publish"): ("project", {"owner", "engineer"}),
}


# ---- a protobuf encoder just large enough for ONNX ----------------------------------------------
def _varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(num, wire):
    return _varint((num << 3) | wire)


def _int(num, v):
    return _key(num, 0) + _varint(v)


def _bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return _key(num, 2) + _varint(len(b)) + b


def _tensor(name, dims, values):
    return (b"".join(_int(1, d) for d in dims) + _int(2, 1) + _bytes(8, name) +
            _bytes(9, struct.pack("<%df" % len(values), *values)))


def _value_info(name, dims):
    shape = b"".join(_bytes(1, _bytes(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, _int(1, 1) + _bytes(2, shape)))


def _attr_ints(name, values):
    return _bytes(1, name) + _int(20, 7) + b"".join(_int(8, v) for v in values)


def _node(op, inputs, outputs, name, attrs=()):
    return (b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs) + _bytes(3, name) +
            _bytes(4, op) + b"".join(_bytes(5, a) for a in attrs))


def tiny_onnx(classes=3, side=16, seed=0, op="Relu", metadata=None):
    """A classifier as ONNX bytes (opset 13): Conv 3x3 (3 -> classes) -> op -> GlobalAveragePool
    -> Flatten, input (N, 3, side, side). metadata: {key: value} for metadata_props (e.g.
    {"classes": json.dumps([...])}). op may name an operator AutoCV does not support."""
    rng = random.Random(seed)
    w = [rng.uniform(-0.5, 0.5) for _ in range(classes * 3 * 3 * 3)]
    b = [rng.uniform(-0.1, 0.1) for _ in range(classes)]
    nodes = [_node("Conv", ["input", "w", "b"], ["c"], "conv", [_attr_ints("pads", [1, 1, 1, 1])]),
             _node(op, ["c"], ["r"], "act"),
             _node("GlobalAveragePool", ["r"], ["p"], "gap"),
             _node("Flatten", ["p"], ["output"], "flat")]
    graph = (b"".join(_bytes(1, n) for n in nodes) + _bytes(2, "tiny") +
             _bytes(5, _tensor("w", [classes, 3, 3, 3], w)) + _bytes(5, _tensor("b", [classes], b)) +
             _bytes(11, _value_info("input", ["N", 3, side, side])) + _bytes(12, _value_info("output", ["N", classes])))
    model = _int(1, 7) + _bytes(8, _bytes(1, "") + _int(2, 13)) + _bytes(2, "autocv-tests") + _bytes(7, graph)
    for k, v in (metadata or {}).items():
        model += _bytes(14, _bytes(1, k) + _bytes(2, v))
    return model


def upload_model(srv, token, name, data=None, fields=None, filename="tiny.onnx", classes=("a", "b", "c")):
    """POSTs a model file (default: tiny_onnx()) as multipart; classes go in the 'classes'
    field unless fields gives its own."""
    f = {"classes": json.dumps(list(classes))} if classes is not None else {}
    f.update(fields or {})
    body, ct = multipart([(filename, data if data is not None else tiny_onnx())], f)
    return srv.request("POST", "/api/v1/models/%s/versions" % name, token, data=body, content_type=ct)


# ---- the matrix ----------------------------------------------------------------------------------
SHARED = "matrix-model"


def _shared(t):
    """The matrix's model with one version (created once per test class)."""
    if not t.__class__.__dict__.get("_routes_models_ready"):
        r = upload_model(t.srv, t.tokens["admin"], SHARED)
        assert r.status == 201, r
        setattr(t.__class__, "_routes_models_ready", True)
    return SHARED


def _job_in(t, project_id):
    """A training job row in the project (inserted directly: publish only needs it to exist)."""
    cache = t.__class__.__dict__.get("_routes_models_jobs")
    if cache is None:
        cache = {}
        setattr(t.__class__, "_routes_models_jobs", cache)
    if project_id not in cache:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        db = sqlite3.connect(os.path.join(t.srv.data, "autocv.db"), timeout=30)
        try:
            cur = db.execute("INSERT INTO jobs(project_id, kind, status, error, created_at, updated_at) "
                             "VALUES(?, 'train', 'failed', 'matrix fixture', ?, ?)", (project_id, now, now))
            db.commit()
            cache[project_id] = cur.lastrowid
        finally:
            db.close()
    return cache[project_id]


def fill(t, key, who, allowed):
    if key not in EXPECTED:
        return None
    method, pattern = key
    if pattern == "/api/v1/jobs/{id}/publish":
        return pattern.replace("{id}", str(_job_in(t, t.project)))
    if pattern == "/api/v1/models":
        return pattern
    name, v = _shared(t), "1"
    if method == "DELETE" and allowed and pattern == "/api/v1/models/{name}":
        name = "matrix-throwaway-%016x" % random.getrandbits(64)
        r = upload_model(t.srv, t.tokens["admin"], name)
        assert r.status == 201, r
    elif method == "DELETE" and allowed:
        r = upload_model(t.srv, t.tokens["admin"], name)
        assert r.status == 201, r
        v = str(r.json()["version"])
    path = pattern.replace("{name}", name).replace("{v}", v)
    return path + "?format=onnx" if path.endswith("/export") else path
