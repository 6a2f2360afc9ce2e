"""Expected permissions of the job routes (algorithms, training jobs, events, pre-annotation),
merged into the route matrix of test_server_core.py (see routes_images.py for the format);
fill() gives the path to call for one of them."""
import os
import sqlite3
import time

import routes_annotations

PROJECT_ROLES = {"owner", "engineer", "annotator", "reviewer", "operator", "viewer"}
MANAGERS = {"owner", "engineer"}

EXPECTED = {
    ("GET", "/api/v1/algorithms"): ("user", None),
    ("GET", "/api/v1/projects/{id}/algorithms"): ("project", PROJECT_ROLES),
    ("POST", "/api/v1/projects/{id}/algorithms"): ("project", MANAGERS),
    ("DELETE", "/api/v1/algorithms/{id}"): ("project", MANAGERS),
    ("POST", "/api/v1/projects/{id}/training-jobs"): ("project", MANAGERS),
    ("GET", "/api/v1/projects/{id}/jobs"): ("project", PROJECT_ROLES),
    ("GET", "/api/v1/jobs/{id}"): ("project", PROJECT_ROLES),
    ("GET", "/api/v1/jobs/{id}/events"): ("project", PROJECT_ROLES),
    ("GET", "/api/v1/jobs/{id}/logs"): ("project", PROJECT_ROLES),
    ("POST", "/api/v1/jobs/{id}/cancel"): ("project", MANAGERS),
    ("POST", "/api/v1/annotation-sets/{id}/pre-annotate"): ("project", MANAGERS),
    ("GET", "/api/v1/annotation-sets/{id}/pre-annotations"): ("project", PROJECT_ROLES),
    ("POST", "/api/v1/models/{name}/versions/{v}/evaluations"): ("global", {"engineer"}),
    ("GET", "/api/v1/evaluations/{id}"): ("user", None),
    ("GET", "/api/v1/models/{name}/compare"): ("user", None),
}


def _insert(test, sql, args):
    """A row written straight into the server's database (WAL: the server keeps running)."""
    db = sqlite3.connect(os.path.join(test.srv.data, "autocv.db"), timeout=30)
    try:
        cur = db.execute(sql, args)
        db.commit()
        return cur.lastrowid
    finally:
        db.close()


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _job(test):
    """A finished (cancelled) job of the matrix project, so its event stream ends at once."""
    jid = test.__class__.__dict__.get("_routes_jobs_job")
    if jid is None:
        jid = _insert(test, "INSERT INTO jobs(project_id, kind, status, created_at, updated_at, dir) "
                            "VALUES (?, 'train', 'cancelled', ?, ?, '')", (test.project, _now(), _now()))
        setattr(test.__class__, "_routes_jobs_job", jid)
    return jid


def fill(test, key, who, allowed):
    if key not in EXPECTED:
        return None
    method, pattern = key
    if pattern.startswith("/api/v1/projects/{id}"):
        return pattern.replace("{id}", str(test.project))
    if pattern.startswith("/api/v1/jobs/{id}"):
        return pattern.replace("{id}", str(_job(test)))
    if pattern == "/api/v1/algorithms/{id}":
        aid = _insert(test, "INSERT INTO custom_algorithms(project_id, name, task, path, created_at) "
                            "VALUES (?, ?, 'cls', 'algorithms/none.onnx', ?)",
                      (test.project, "matrix-%d" % int(time.time() * 1e6), _now()))
        return pattern.replace("{id}", str(aid))
    if key in (("POST", "/api/v1/models/{name}/versions/{v}/evaluations"), ("GET", "/api/v1/models/{name}/compare")):
        return pattern.replace("{name}", "no-such-model").replace("{v}", "1")
    if pattern == "/api/v1/evaluations/{id}":
        return pattern.replace("{id}", "999999")
    if pattern.startswith("/api/v1/annotation-sets/{id}"):
        return pattern.replace("{id}", str(routes_annotations._objects(test)["set"]))
    return pattern
