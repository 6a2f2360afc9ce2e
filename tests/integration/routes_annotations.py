"""Expected permissions of the annotation, review and dataset-version routes, merged into the
route matrix of test_server_core.py: (METHOD, PATTERN) -> (kind, roles) as EXPECTED there.

fill() gives the path a matrix should call for one of these routes: real objects of the
matrix project (an annotation set holding one image, a task, a dataset version), created once
per test class with the admin token, or throwaway ones where an allowed call deletes its
target, so that a role that may not use a route meets a 403 on an existing object rather than
a 404 on a missing one."""
import random
import time

from routes_images import _image_in

PROJECT_ROLES = {"owner", "engineer", "annotator", "reviewer", "operator", "viewer"}
MANAGERS = {"owner", "engineer"}
EDITORS = {"owner", "engineer", "annotator"}
REVIEWERS = {"owner", "reviewer"}

EXPECTED = {
    ("POST", "/api/v1/projects/{id}/annotation-sets"): ("project", MANAGERS),
    ("GET", "/api/v1/projects/{id}/annotation-sets"): ("project", PROJECT_ROLES),
    ("GET", "/api/v1/annotation-sets/{id}"): ("project", PROJECT_ROLES),
    ("DELETE", "/api/v1/annotation-sets/{id}"): ("project", MANAGERS),
    ("POST", "/api/v1/annotation-sets/{id}/items"): ("project", MANAGERS),
    ("GET", "/api/v1/annotation-sets/{id}/items"): ("project", PROJECT_ROLES),
    ("GET", "/api/v1/annotation-sets/{id}/items/{image_id}"): ("project", PROJECT_ROLES),
    ("PUT", "/api/v1/annotation-sets/{id}/items/{image_id}"): ("project", EDITORS),
    ("POST", "/api/v1/annotation-sets/{id}/items/{image_id}/lock"): ("project", EDITORS),
    ("DELETE", "/api/v1/annotation-sets/{id}/items/{image_id}/lock"): ("project", EDITORS),
    ("POST", "/api/v1/annotation-sets/{id}/items/{image_id}/submit"): ("project", EDITORS),
    ("POST", "/api/v1/annotation-sets/{id}/items/{image_id}/review"): ("project", REVIEWERS),
    ("GET", "/api/v1/annotation-sets/{id}/review-queue"): ("project", REVIEWERS),
    ("GET", "/api/v1/annotation-sets/{id}/progress"): ("project", PROJECT_ROLES),
    ("POST", "/api/v1/annotation-sets/{id}/tasks"): ("project", MANAGERS),
    ("GET", "/api/v1/annotation-sets/{id}/tasks"): ("project", PROJECT_ROLES),
    ("POST", "/api/v1/annotation-sets/{id}/tasks/claim"): ("project", EDITORS),
    ("PATCH", "/api/v1/annotation-tasks/{id}"): ("project", MANAGERS),
    ("POST", "/api/v1/annotation-sets/{id}/versions"): ("project", MANAGERS),
    ("GET", "/api/v1/projects/{id}/dataset-versions"): ("project", PROJECT_ROLES),
    ("GET", "/api/v1/dataset-versions/{id}"): ("project", PROJECT_ROLES),
    ("GET", "/api/v1/dataset-versions/{id}/items"): ("project", PROJECT_ROLES),
    ("GET", "/api/v1/dataset-versions/{id}/export"): ("project", PROJECT_ROLES),
    ("DELETE", "/api/v1/dataset-versions/{id}"): ("project", MANAGERS),
}


def _ok(r, status=(200, 201)):
    assert r.status in ((status,) if isinstance(status, int) else status), r
    return r.json()


def _unique(prefix):
    return "%s %d %d" % (prefix, int(time.time() * 1e6), random.getrandbits(30))


def _new_set(test, image_id):
    return _ok(test.srv.request("POST", "/api/v1/projects/%d/annotation-sets" % test.project, test.tokens["admin"],
                                {"name": _unique("matrix set"), "task": "det", "image_ids": [image_id]}))["id"]


def _new_version(test, set_id):
    return _ok(test.srv.request("POST", "/api/v1/annotation-sets/%d/versions" % set_id, test.tokens["admin"],
                                {"name": _unique("matrix version")}))["id"]


def _objects(test):
    """The matrix project's set (one image, accepted), a task and a version; made once."""
    cache = test.__class__.__dict__.get("_routes_annotations_cache")
    if cache is None:
        srv, adm = test.srv, test.tokens["admin"]
        iid = _image_in(test, test.project)
        sid = _new_set(test, iid)
        item = "/api/v1/annotation-sets/%d/items/%d" % (sid, iid)
        _ok(srv.request("POST", item + "/submit", adm))
        _ok(srv.request("POST", item + "/review", adm, {"decision": "accept"}))
        vid = _new_version(test, sid)
        tset = _new_set(test, iid)
        tid = _ok(srv.request("POST", "/api/v1/annotation-sets/%d/tasks" % tset, adm, {"size": 1}))["items"][0]["id"]
        cache = {"image": iid, "set": sid, "version": vid, "task": tid}
        setattr(test.__class__, "_routes_annotations_cache", cache)
    return cache


def fill(test, key, who, allowed):
    """The path to call for route key as user who (test has .srv, .tokens["admin"] and
    .project, the matrix project); None when key is not one of these routes."""
    if key not in EXPECTED:
        return None
    method, pattern = key
    if pattern.startswith("/api/v1/projects/{id}"):
        return pattern.replace("{id}", str(test.project))
    o = _objects(test)
    p = pattern.replace("{image_id}", str(o["image"]))
    if pattern.startswith("/api/v1/annotation-sets/{id}"):
        sid = _new_set(test, o["image"]) if (method == "DELETE" and pattern.endswith("{id}") and allowed) else o["set"]
        return p.replace("{id}", str(sid))
    if pattern.startswith("/api/v1/annotation-tasks/{id}"):
        return p.replace("{id}", str(o["task"]))
    if pattern.startswith("/api/v1/dataset-versions/{id}"):
        vid = _new_version(test, o["set"]) if (method == "DELETE" and allowed) else o["version"]
        return p.replace("{id}", str(vid))
    return None
