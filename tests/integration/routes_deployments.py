"""Expected permissions of the deployments routes (and the KServe v2 routes at /v2), merged into
the route matrix of test_server_core.py (see routes_images.py for the format); fill() gives the
path to call for one of them.

These routes check global roles (or only a valid token) before the handler runs, so the matrix
calls them on a deployment that does not exist: a role that may call the route gets past the
check (404, or 400/415 for the matrix's empty body) and one that may not gets 403. The same
checks on a real deployment are in test_server_deploy.py."""

DEPLOYERS = {"engineer", "operator"}

EXPECTED = {
    ("POST", "/api/v1/deployments"): ("global", DEPLOYERS),
    ("GET", "/api/v1/deployments"): ("user", None),
    ("GET", "/api/v1/deployments/{id}"): ("user", None),
    ("PATCH", "/api/v1/deployments/{id}"): ("global", DEPLOYERS),
    ("DELETE", "/api/v1/deployments/{id}"): ("global", DEPLOYERS),
    ("POST", "/api/v1/deployments/{id}/predict"): ("global", DEPLOYERS),
    ("GET", "/v2/health/live"): ("public", None),
    ("GET", "/v2/health/ready"): ("public", None),
    ("GET", "/v2/models/{name}"): ("user", None),
    ("GET", "/v2/models/{name}/ready"): ("user", None),
    ("GET", "/v2/models/{name}/versions/{version}"): ("user", None),
    ("GET", "/v2/models/{name}/versions/{version}/ready"): ("user", None),
    ("POST", "/v2/models/{name}/infer"): ("global", DEPLOYERS),
    ("POST", "/v2/models/{name}/versions/{version}/infer"): ("global", DEPLOYERS),
}


def fill(t, key, who, allowed):
    """The path to call for route key (None when key is not one of these routes)."""
    if key not in EXPECTED:
        return None
    return key[1].replace("{id}", "999999").replace("{name}", "no-such-deployment").replace("{version}", "1")
