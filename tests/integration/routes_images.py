"""Expected permissions of the images routes, merged into the route matrix of
test_server_core.py: (METHOD, PATTERN) -> (kind, roles) as EXPECTED there.

fill() gives the path a matrix should call for one of these routes (creating a real image,
or a throwaway one where an allowed call deletes it), so that a role that may not use a route
meets a 403 on an existing object rather than a 404 on a missing one."""
import os
import random

from helpers import png_bytes

PROJECT_ROLES = {"owner", "engineer", "annotator", "reviewer", "operator", "viewer"}

EXPECTED = {
    ("POST", "/api/v1/projects/{id}/images"): ("project", {"owner", "engineer", "annotator"}),
    ("GET", "/api/v1/projects/{id}/images"): ("project", PROJECT_ROLES),
    ("GET", "/api/v1/images/{id}"): ("project", PROJECT_ROLES),
    ("GET", "/api/v1/images/{id}/file"): ("project", PROJECT_ROLES),
    ("GET", "/api/v1/images/{id}/thumbnail"): ("project", PROJECT_ROLES),
    ("DELETE", "/api/v1/images/{id}"): ("project", {"owner", "engineer"}),
    ("POST", "/api/v1/projects/{id}/imports"): ("project", {"owner", "engineer"}),
    ("GET", "/api/v1/projects/{id}/imports"): ("project", PROJECT_ROLES),
    ("GET", "/api/v1/imports/{id}"): ("project", PROJECT_ROLES),
}


def multipart(files, fields=None, name="file"):
    """A multipart/form-data body: files is [(filename, bytes)], fields {name: text}.
    Returns (body, content_type)."""
    boundary = "acvboundary%016x" % random.getrandbits(64)
    out = []
    for k, v in (fields or {}).items():
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (boundary, k, v)).encode())
    for fname, data in files:
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n" % (boundary, name, fname)).encode())
        out.append(data + b"\r\n")
    out.append(("--%s--\r\n" % boundary).encode())
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def random_png(w=8, h=8, seed=None):
    rng = random.Random(seed)
    return png_bytes(w, h, bytes(rng.randrange(256) for _ in range(w * h * 3)))


def upload(srv, token, project_id, files):
    body, ct = multipart(files)
    return srv.request("POST", "/api/v1/projects/%d/images" % project_id, token, data=body, content_type=ct)


def _image_in(test, project_id):
    """An image of the project (uploaded once per test class)."""
    cache = test.__class__.__dict__.get("_routes_images_cache")
    if cache is None:
        cache = {}
        setattr(test.__class__, "_routes_images_cache", cache)
    if project_id not in cache:
        r = upload(test.srv, test.tokens["admin"], project_id, [("matrix.png", random_png(seed=project_id))])
        assert r.status == 201, r
        cache[project_id] = r.json()["images"][0]["id"]
    return cache[project_id]


def _import_in(test, project_id):
    r = test.srv.request("GET", "/api/v1/projects/%d/imports" % project_id, test.tokens["admin"])
    items = r.json()["items"]
    if items:
        return items[0]["id"]
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("matrix/a.png", random_png(seed=os.getpid()))
    r = test.srv.request("POST", "/api/v1/projects/%d/imports" % project_id, test.tokens["admin"],
                         data=buf.getvalue(), content_type="application/zip")
    assert r.status == 201, r
    return r.json()["import"]["id"]


def fill(test, key, who, allowed):
    """The path to call for route key as user who (test has .srv, .tokens["admin"] and
    .project, the matrix project); None when key is not one of these routes."""
    if key not in EXPECTED:
        return None
    method, pattern = key
    if pattern.startswith("/api/v1/projects/{id}"):
        return pattern.replace("{id}", str(test.project))
    if pattern.startswith("/api/v1/images/{id}"):
        if method == "DELETE" and allowed:
            r = upload(test.srv, test.tokens["admin"], test.project,
                       [("throwaway.png", random_png(seed=random.getrandbits(64)))])
            assert r.status == 201, r
            iid = r.json()["images"][0]["id"]
        else:
            iid = _image_in(test, test.project)
        return pattern.replace("{id}", str(iid))
    if pattern.startswith("/api/v1/imports/{id}"):
        return pattern.replace("{id}", str(_import_in(test, test.project)))
    return None
