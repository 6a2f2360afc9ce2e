"""The platform server's core over real HTTP (issue 3): login/logout/me, users of every role,
a role x route matrix over every route of the OpenAPI document, project membership, labels
(bulk JSON and CSV, duplicates, hierarchy, search at 10,000 labels), bad requests (400, 404,
405, 413, 415), the audit log, metrics, clean shutdown, and a SIGKILL restart that keeps every
acknowledged write."""
import http.client
import json
import os
import random
import socket
import sqlite3
import threading
import time
import unittest
import urllib.parse

from server import ADMIN_PASSWORD, Server

PROJECT_ROLES = {"owner", "engineer", "annotator", "reviewer", "operator", "viewer"}

# Who may call each route: ("public"|"user"|"self", None) or ("global"|"project", roles).
# Admins may call everything. "self" routes are "user" routes whose handler allows admins and
# the user named by {id}. A route in the server's OpenAPI document that is missing here, or a
# route here missing from the document, fails test_openapi_lists_every_route.
EXPECTED = {
    ("GET", "/healthz"): ("public", None),
    ("GET", "/metrics"): ("user", None),
    ("GET", "/api/v1/openapi.json"): ("user", None),
    ("POST", "/api/v1/auth/login"): ("public", None),
    ("POST", "/api/v1/auth/logout"): ("user", None),
    ("GET", "/api/v1/auth/me"): ("user", None),
    ("POST", "/api/v1/tokens"): ("user", None),
    ("GET", "/api/v1/tokens"): ("user", None),
    ("DELETE", "/api/v1/tokens/{id}"): ("user", None),
    ("GET", "/api/v1/users"): ("global", set()),
    ("POST", "/api/v1/users"): ("global", set()),
    ("GET", "/api/v1/users/{id}"): ("self", None),
    ("PATCH", "/api/v1/users/{id}"): ("self", None),
    ("DELETE", "/api/v1/users/{id}"): ("global", set()),
    ("GET", "/api/v1/projects"): ("user", None),
    ("POST", "/api/v1/projects"): ("global", {"engineer"}),
    ("GET", "/api/v1/projects/{id}"): ("project", PROJECT_ROLES),
    ("PATCH", "/api/v1/projects/{id}"): ("project", {"owner", "engineer"}),
    ("DELETE", "/api/v1/projects/{id}"): ("project", {"owner"}),
    ("GET", "/api/v1/projects/{id}/members"): ("project", PROJECT_ROLES),
    ("PUT", "/api/v1/projects/{id}/members/{user_id}"): ("project", {"owner"}),
    ("DELETE", "/api/v1/projects/{id}/members/{user_id}"): ("project", {"owner"}),
    ("GET", "/api/v1/projects/{id}/labels"): ("project", PROJECT_ROLES),
    ("POST", "/api/v1/projects/{id}/labels"): ("project", {"owner", "engineer"}),
    ("GET", "/api/v1/labels/{id}"): ("project", PROJECT_ROLES),
    ("PATCH", "/api/v1/labels/{id}"): ("project", {"owner", "engineer"}),
    ("DELETE", "/api/v1/labels/{id}"): ("project", {"owner", "engineer"}),
    ("GET", "/api/v1/audit"): ("global", set()),
}
# each resource's own routes live beside its tests
ROUTE_MODULES = ("routes_images", "routes_annotations", "routes_jobs", "routes_models", "routes_deployments")
for _mod in ROUTE_MODULES:
    EXPECTED.update(__import__(_mod).EXPECTED)

# Test users: name -> (global roles, role in the matrix project).
USERS = {
    "eng": (["engineer"], "engineer"),
    "ann": (["annotator"], "annotator"),
    "rev": (["reviewer"], "reviewer"),
    "ope": (["operator"], "operator"),
    "vie": (["viewer"], "viewer"),
    "own": (["viewer"], "owner"),
}
PASSWORD = "user-password-123"


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p * (len(v) - 1))))]


class TestServerCore(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(["--max-upload-mb", "2"]).start()
        cls.admin = cls.srv.admin_token()
        cls.ids, cls.tokens = {}, {"admin": cls.admin}
        for name, (roles, _) in list(USERS.items()) + [("outsider", (["engineer"], None))]:
            r = cls.srv.request("POST", "/api/v1/users", cls.admin,
                                {"username": name, "password": PASSWORD, "roles": roles})
            assert r.status == 201, r
            cls.ids[name] = r.json()["id"]
            cls.tokens[name] = cls.srv.login(name, PASSWORD)
        cls.admin_id = cls.srv.request("GET", "/api/v1/auth/me", cls.admin).json()["id"]
        cls.project = cls.make_project("matrix project")
        r = cls.srv.request("POST", "/api/v1/projects/%d/labels" % cls.project, cls.admin, {"name": "matrix-label"})
        assert r.status == 201, r
        cls.label = r.json()["id"]

    @classmethod
    def tearDownClass(cls):
        cls.srv.cleanup()

    @classmethod
    def make_project(cls, name):
        return cls.srv.make_project(cls.admin, name, {cls.ids[u]: prole for u, (_, prole) in USERS.items()})

    def req(self, method, path, who="admin", **kw):
        return self.srv.request(method, path, self.tokens.get(who, who), **kw)

    # ---- authentication ----------------------------------------------------------------
    def test_login_logout_me(self):
        r = self.srv.request("POST", "/api/v1/auth/login", json_body={"username": "admin", "password": "nope-nope"})
        self.assertEqual(r.status, 401)
        self.assertEqual(r.error_code(), "unauthorized")
        r = self.srv.request("POST", "/api/v1/auth/login", json_body={"username": "ghost", "password": "nope-nope"})
        self.assertEqual(r.status, 401)
        r = self.srv.request("POST", "/api/v1/auth/login", json_body={"username": "eng", "password": PASSWORD})
        self.assertEqual(r.status, 200)
        body = r.json()
        tok = body["token"]
        self.assertTrue(tok.startswith("acv_"))
        self.assertEqual(body["user"]["roles"], ["engineer"])
        self.assertIn("expires_at", body)
        me = self.srv.request("GET", "/api/v1/auth/me", tok)
        self.assertEqual(me.status, 200)
        self.assertEqual(me.json()["username"], "eng")
        self.assertEqual(me.json()["token"]["kind"], "session")
        self.assertIn(self.project, [p["id"] for p in me.json()["projects"]])
        self.assertEqual(self.srv.request("POST", "/api/v1/auth/logout", tok).status, 204)
        r = self.srv.request("GET", "/api/v1/auth/me", tok)
        self.assertEqual(r.status, 401)
        self.assertIn("revoked", r.json()["error"]["message"])
        r = self.srv.request("GET", "/api/v1/auth/me")
        self.assertEqual(r.status, 401)
        self.assertEqual(r.headers.get("www-authenticate"), "Bearer")
        self.assertEqual(self.srv.request("GET", "/api/v1/auth/me", "acv_" + "x" * 43).status, 401)
        self.assertEqual(self.srv.request("GET", "/api/v1/auth/me",
                                          headers={"Authorization": "Basic YWRtaW46eA=="}).status, 401)

    def test_api_tokens(self):
        r = self.req("POST", "/api/v1/tokens", "ann", json_body={"name": "ci", "expires_in_days": 30})
        self.assertEqual(r.status, 201, r)
        api = r.json()
        self.assertEqual(api["kind"], "api")
        self.assertTrue(api["token"].startswith(api["prefix"]))
        self.assertEqual(self.srv.request("GET", "/api/v1/auth/me", api["token"]).json()["username"], "ann")
        lst = self.req("GET", "/api/v1/tokens", "ann").json()
        listed = [t for t in lst["items"] if t["id"] == api["id"]]
        self.assertEqual(len(listed), 1)
        self.assertNotIn("token", listed[0])  # the secret is shown once only
        # Someone else cannot revoke it (404, not revealed); the owner can.
        self.assertEqual(self.req("DELETE", "/api/v1/tokens/%d" % api["id"], "eng").status, 404)
        self.assertEqual(self.req("GET", "/api/v1/tokens?all=true", "eng").status, 403)
        self.assertEqual(self.req("DELETE", "/api/v1/tokens/%d" % api["id"], "ann").status, 204)
        self.assertEqual(self.srv.request("GET", "/api/v1/auth/me", api["token"]).status, 401)
        self.assertEqual(self.req("POST", "/api/v1/tokens", "ann", json_body={"name": "x", "expires_in_days": 0}).status,
                         422)
        self.assertEqual(self.req("POST", "/api/v1/tokens", "ann", json_body={}).status, 400)

    def test_users_of_each_role(self):
        for name, (roles, _) in USERS.items():
            me = self.req("GET", "/api/v1/auth/me", name).json()
            self.assertEqual(me["roles"], roles)
        names = [u["username"] for u in self.req("GET", "/api/v1/users?limit=1000").json()["items"]]
        for name in USERS:
            self.assertIn(name, names)
        r = self.req("POST", "/api/v1/users", json_body={"username": "EnG", "password": PASSWORD})
        self.assertEqual(r.status, 409)  # usernames are case-insensitive
        r = self.req("POST", "/api/v1/users", json_body={"username": "x1", "password": PASSWORD, "roles": ["king"]})
        self.assertEqual(r.status, 422)
        self.assertIn("king", r.json()["error"]["message"])
        self.assertEqual(self.req("POST", "/api/v1/users", json_body={"username": "x2", "password": "short"}).status, 422)
        self.assertEqual(self.req("POST", "/api/v1/users", json_body={"username": "a b", "password": PASSWORD}).status, 422)
        self.assertEqual(self.req("POST", "/api/v1/users", json_body={"password": PASSWORD}).status, 400)
        # Default role: viewer. Self-service password change needs the old password.
        r = self.req("POST", "/api/v1/users", json_body={"username": "selfie", "password": PASSWORD})
        self.assertEqual(r.status, 201)
        self.assertEqual(r.json()["roles"], ["viewer"])
        uid = r.json()["id"]
        tok = self.srv.login("selfie", PASSWORD)
        p = "/api/v1/users/%d" % uid
        self.assertEqual(self.srv.request("PATCH", p, tok, {"password": "new-password-1"}).status, 400)
        self.assertEqual(self.srv.request("PATCH", p, tok, {"password": "new-password-1",
                                                           "old_password": "wrong-one"}).status, 403)
        self.assertEqual(self.srv.request("PATCH", p, tok, {"roles": ["admin"]}).status, 403)
        self.assertEqual(self.srv.request("PATCH", "/api/v1/users/%d" % self.ids["eng"], tok,
                                          {"password": "new-password-1", "old_password": PASSWORD}).status, 403)
        r = self.srv.request("PATCH", p, tok, {"password": "new-password-1", "old_password": PASSWORD})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.srv.request("GET", "/api/v1/auth/me", tok).status, 200)  # this session stays
        self.srv.login("selfie", "new-password-1")
        self.assertEqual(self.srv.request("GET", p, tok).json()["username"], "selfie")
        # The interface language: one's own (not audited), en / zh / null only, not another's.
        self.assertIsNone(self.srv.request("GET", "/api/v1/auth/me", tok).json()["lang"])
        audits = self.req("GET", "/api/v1/audit?limit=1").json()["total"]
        r = self.srv.request("PATCH", p, tok, {"lang": "zh"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["lang"], "zh")
        self.assertEqual(self.srv.request("GET", "/api/v1/auth/me", tok).json()["lang"], "zh")
        self.assertEqual(self.req("GET", "/api/v1/audit?limit=1").json()["total"], audits)
        for bad in ("fr", "", 1, ["zh"]):
            r = self.srv.request("PATCH", p, tok, {"lang": bad})
            self.assertIn(r.status, (400, 422), (bad, r))
            self.assertIn("lang", r.json()["error"]["message"])
        self.assertEqual(self.srv.request("GET", "/api/v1/auth/me", tok).json()["lang"], "zh")
        self.assertEqual(self.srv.request("PATCH", "/api/v1/users/%d" % self.ids["eng"], tok, {"lang": "en"}).status, 403)
        self.assertEqual(self.srv.request("PATCH", p, tok, {"lang": None}).json()["lang"], None)
        # Disabling ends every token of the user; deleting removes them.
        self.assertEqual(self.req("PATCH", p, json_body={"disabled": True}).status, 200)
        self.assertEqual(self.srv.request("GET", "/api/v1/auth/me", tok).status, 401)
        self.assertEqual(self.req("DELETE", p).status, 204)
        self.assertEqual(self.req("GET", p).status, 404)
        # The last admin stays an admin, and nobody deletes their own account.
        r = self.req("PATCH", "/api/v1/users/%d" % self.admin_id, json_body={"roles": ["viewer"]})
        self.assertEqual(r.status, 409)
        self.assertEqual(self.req("DELETE", "/api/v1/users/%d" % self.admin_id).status, 409)

    # ---- the route table ----------------------------------------------------------------
    def openapi_ops(self):
        doc = self.req("GET", "/api/v1/openapi.json").json()
        ops = {}
        for path, item in doc["paths"].items():
            for method, op in item.items():
                ops[(method.upper(), path)] = op
        return doc, ops

    def test_openapi_lists_every_route(self):
        doc, ops = self.openapi_ops()
        self.assertTrue(doc["openapi"].startswith("3.0"))
        self.assertEqual(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer")
        self.assertEqual(doc["security"], [{"bearer": []}])
        self.assertEqual(set(ops) - set(EXPECTED), set(), "routes the test does not know")
        self.assertEqual(set(EXPECTED) - set(ops), set(), "routes missing from the OpenAPI document")
        for key, op in ops.items():
            kind, roles = EXPECTED[key]
            perm = op["x-permission"]
            self.assertEqual(perm["kind"], "user" if kind == "self" else kind, key)
            if kind in ("global", "project"):
                self.assertEqual(set(perm["roles"]), roles | {"admin"}, key)
            self.assertTrue(op["summary"], key)
            self.assertEqual(op.get("security") == [], kind == "public", key)
            for name in [s[1:-1] for s in key[1].split("/") if s.startswith("{")]:
                self.assertIn(name, [p["name"] for p in op.get("parameters", []) if p["in"] == "path"], key)
            for ref in json.dumps(op).split('"$ref": "#/components/schemas/')[1:]:
                self.assertIn(ref.split('"')[0], doc["components"]["schemas"], key)

    def fill(self, key, who, allowed):
        """The path to call for route key as user who, creating a throwaway target where an
        allowed call would destroy the shared one."""
        for mod in ROUTE_MODULES:
            hook = __import__(mod).fill(self, key, who, allowed)
            if hook is not None:
                return hook
        method, pattern = key
        p = pattern.replace("{user_id}", str(self.ids["outsider"]))
        if pattern.startswith("/api/v1/projects/{id}"):
            pid = self.project
            if key == ("DELETE", "/api/v1/projects/{id}") and allowed:
                pid = self.make_project("throwaway %s %f" % (who, time.time()))
            p = p.replace("{id}", str(pid))
        elif pattern.startswith("/api/v1/labels/{id}"):
            lid = self.label
            if method == "DELETE" and allowed:
                r = self.req("POST", "/api/v1/projects/%d/labels" % self.project,
                             json_body={"name": "throwaway %s %f" % (who, time.time())})
                lid = r.json()["id"]
            p = p.replace("{id}", str(lid))
        elif pattern.startswith("/api/v1/users/{id}"):
            p = p.replace("{id}", str(999999 if method == "DELETE" else self.admin_id))
        else:
            p = p.replace("{id}", "999999")
        return p

    def allowed(self, who, kind, roles):
        if who == "admin" or kind in ("public", "user"):
            return True
        groles, prole = USERS[who]
        if kind == "global":
            return any(r in roles for r in groles)
        if kind == "project":
            return prole in roles
        return False  # "self": the target is the admin

    def test_role_route_matrix(self):
        _, ops = self.openapi_ops()
        checked = 0
        for key in sorted(ops):
            kind, roles = EXPECTED[key]
            method = key[0]
            body = {} if method in ("POST", "PUT", "PATCH") else None
            r = self.srv.request(method, self.fill(key, None, False), None, json_body=body)
            if kind == "public":
                self.assertNotEqual(r.status, 401, key)
            else:
                self.assertEqual(r.status, 401, "%s without a token: %r" % (key, r))
                self.assertEqual(r.error_code(), "unauthorized")
            for who in ["admin"] + list(USERS):
                ok = self.allowed(who, kind, roles)
                if ok and key == ("POST", "/api/v1/auth/logout"):
                    continue  # would end the session the matrix runs on; test_login_logout_me covers it
                r = self.req(method, self.fill(key, who, ok), who, json_body=body)
                if ok:
                    self.assertNotIn(r.status, (401, 403), "%s as %s: %r" % (key, who, r))
                else:
                    self.assertEqual(r.status, 403, "%s as %s: %r" % (key, who, r))
                    self.assertEqual(r.error_code(), "forbidden")
                checked += 1
            if kind == "project":  # a non-member does not see the project at all
                r = self.req(method, self.fill(key, "outsider", False), "outsider", json_body=body)
                self.assertEqual(r.status, 404, "%s as a non-member: %r" % (key, r))
        self.assertGreater(checked, 7 * 25)

    # ---- projects and membership -----------------------------------------------------------
    def test_project_membership_visibility(self):
        r = self.req("POST", "/api/v1/projects", "eng", json_body={"name": "Vis", "description": "d"})
        self.assertEqual(r.status, 201, r)
        pid, p = r.json()["id"], "/api/v1/projects/%d" % r.json()["id"]
        self.assertEqual(r.json()["my_role"], "owner")
        self.assertEqual(r.headers["location"], p)
        self.assertEqual(self.req("POST", "/api/v1/projects", "eng", json_body={"name": "vis"}).status, 409)
        # The outsider sees nothing of it.
        self.assertNotIn(pid, [x["id"] for x in self.req("GET", "/api/v1/projects", "outsider").json()["items"]])
        self.assertEqual(self.req("GET", p, "outsider").status, 404)
        self.assertEqual(self.req("GET", p + "/labels", "outsider").status, 404)
        # Added as a viewer: sees it, cannot change it.
        r = self.req("PUT", p + "/members/%d" % self.ids["outsider"], "eng", json_body={"role": "viewer"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.req("PUT", p + "/members/%d" % self.ids["outsider"], "eng",
                                  json_body={"role": "viewer"}).status, 200)
        self.assertIn(pid, [x["id"] for x in self.req("GET", "/api/v1/projects", "outsider").json()["items"]])
        self.assertEqual(self.req("GET", p, "outsider").json()["my_role"], "viewer")
        self.assertEqual(self.req("POST", p + "/labels", "outsider", json_body={"name": "x"}).status, 403)
        self.assertEqual(self.req("PATCH", p, "outsider", json_body={"name": "y"}).status, 403)
        members = self.req("GET", p + "/members", "outsider").json()
        self.assertEqual(sorted(m["username"] for m in members["items"]), ["eng", "outsider"])
        self.assertEqual(self.req("PUT", p + "/members/%d" % self.ids["outsider"], "eng",
                                  json_body={"role": "boss"}).status, 422)
        self.assertEqual(self.req("PUT", p + "/members/999999", "eng", json_body={"role": "viewer"}).status, 404)
        # A project keeps an owner.
        self.assertEqual(self.req("DELETE", p + "/members/%d" % self.ids["eng"], "eng").status, 409)
        self.assertEqual(self.req("PUT", p + "/members/%d" % self.ids["eng"], "eng",
                                  json_body={"role": "viewer"}).status, 409)
        r = self.req("DELETE", "/api/v1/users/%d" % self.ids["eng"])
        self.assertEqual(r.status, 409)
        self.assertIn("last owner", r.json()["error"]["message"])
        # Removed again: gone from view. Admins see every project.
        self.assertEqual(self.req("DELETE", p + "/members/%d" % self.ids["outsider"], "eng").status, 204)
        self.assertEqual(self.req("GET", p, "outsider").status, 404)
        self.assertIn(pid, [x["id"] for x in self.req("GET", "/api/v1/projects?limit=1000").json()["items"]])
        r = self.req("PATCH", p, "eng", json_body={"description": "changed"})
        self.assertEqual((r.status, r.json()["description"], r.json()["name"]), (200, "changed", "Vis"))
        self.assertEqual(self.req("DELETE", p, "eng").status, 204)
        self.assertEqual(self.req("GET", p, "eng").status, 404)

    # ---- labels -------------------------------------------------------------------------
    def test_labels_bulk_json_csv_duplicates(self):
        pid = self.req("POST", "/api/v1/projects", json_body={"name": "labels-%f" % time.time()}).json()["id"]
        base = "/api/v1/projects/%d/labels" % pid
        # Bulk JSON: a parent defined later in the same request, aliases, color.
        r = self.req("POST", base, json_body={"labels": [
            {"name": "scratch", "parent": "surface", "aliases": ["kratzer", "mark"], "color": "#FF0000"},
            {"name": "surface", "description": "surface defects"},
            {"name": "dent", "parent": "surface"}]})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()["created"], 3)
        items = {l["name"]: l for l in r.json()["items"]}
        self.assertEqual(items["scratch"]["parent"], "surface")
        self.assertEqual(items["scratch"]["parent_id"], items["surface"]["id"])
        self.assertEqual(items["scratch"]["aliases"], ["kratzer", "mark"])
        self.assertEqual(items["scratch"]["color"], "#ff0000")
        self.assertRegex(items["dent"]["color"], r"^#[0-9a-f]{6}$")
        # CSV: any column order, quoted fields with commas and quotes, aliases split on | and ;.
        csv = ('description,name,aliases,parent,color\r\n'
               '"a ""deep"" one, really",gouge,"g1|g2; g3",scratch,#00ff00\r\n'
               ',crack,,,\r\n')
        r = self.req("POST", base, data=csv, content_type="text/csv")
        self.assertEqual(r.status, 201, r)
        g = [l for l in r.json()["items"] if l["name"] == "gouge"][0]
        self.assertEqual(g["description"], 'a "deep" one, really')
        self.assertEqual(g["aliases"], ["g1", "g2", "g3"])
        self.assertEqual(g["parent"], "scratch")
        total = lambda: self.req("GET", base).json()["total"]
        self.assertEqual(total(), 5)
        # All or nothing: a duplicate inside the request, or of an existing label, is 409.
        r = self.req("POST", base, json_body={"labels": [{"name": "new1"}, {"name": "new1"}]})
        self.assertEqual(r.status, 409)
        self.assertIn("twice", r.json()["error"]["message"])
        r = self.req("POST", base, data="name\nnew2\ndent\n", content_type="text/csv")
        self.assertEqual(r.status, 409)
        self.assertIn("dent", r.json()["error"]["message"])
        self.assertEqual(self.req("POST", base, json_body={"name": "dent"}).status, 409)
        self.assertEqual(total(), 5)
        for bad, code in [({"labels": [{"name": "x", "parent": "nope"}]}, 422), ({"name": "x", "color": "red"}, 422),
                          ({"name": ""}, 422), ({"name": 5}, 400), ({"labels": "x"}, 400),
                          ({"name": "x", "size": 1}, 422), ({"labels": [{"name": "a"}], "x": 1}, 422)]:
            r = self.req("POST", base, json_body=bad)
            self.assertEqual(r.status, code, (bad, r))
        for csv_bad in ["parent\nx\n", "name,shape\nx,y\n", "name\n\"unclosed\n", "name,color\nx\n", ""]:
            r = self.req("POST", base, data=csv_bad, content_type="text/csv")
            self.assertIn(r.status, (400, 422), (csv_bad, r))
        self.assertEqual(total(), 5)
        # PATCH: rename, re-parent (cycles refused), clear the parent; DELETE orphans children.
        sid, surf = items["scratch"]["id"], items["surface"]["id"]
        r = self.req("PATCH", "/api/v1/labels/%d" % surf, json_body={"parent": "gouge"})
        self.assertEqual(r.status, 422)
        self.assertIn("cycle", r.json()["error"]["message"])
        r = self.req("PATCH", "/api/v1/labels/%d" % sid, json_body={"name": "scratch-line", "aliases": ["line"]})
        self.assertEqual((r.status, r.json()["name"], r.json()["aliases"]), (200, "scratch-line", ["line"]))
        self.assertEqual(self.req("PATCH", "/api/v1/labels/%d" % sid, json_body={"name": "dent"}).status, 409)
        self.assertIsNone(self.req("PATCH", "/api/v1/labels/%d" % sid, json_body={"parent": None}).json()["parent"])
        self.assertEqual(self.req("DELETE", "/api/v1/labels/%d" % surf).status, 204)
        dent = self.req("GET", "/api/v1/labels/%d" % items["dent"]["id"]).json()
        self.assertIsNone(dent["parent_id"])
        self.assertEqual(self.req("GET", "/api/v1/labels/%d" % surf).status, 404)
        # Paging.
        page = self.req("GET", base + "?limit=2&offset=1").json()
        self.assertEqual((len(page["items"]), page["total"], page["limit"], page["offset"]), (2, 4, 2, 1))
        for q in ["?limit=0", "?limit=abc", "?offset=-1", "?limit=1001"]:
            self.assertEqual(self.req("GET", base + q).status, 400, q)

    def test_label_search_at_10000(self):
        pid = self.req("POST", "/api/v1/projects", json_body={"name": "search-%f" % time.time()}).json()["id"]
        rng = random.Random(7)
        adjs = ["scratched", "dented", "bent", "cracked", "rusty", "chipped", "missing", "loose", "burnt", "stained",
                "warped", "pitted", "porous", "oily", "torn", "frayed", "misaligned", "faded", "foreign", "broken"]
        nouns = ["bolt", "nut", "washer", "screw", "rivet", "gear", "spring", "clip", "pin", "cap", "weld", "seam",
                 "label", "cable", "hose", "panel", "lens", "tray", "housing", "flange"]
        labels = []
        for i in range(10000):
            a, n = adjs[i % len(adjs)], nouns[(i // len(adjs)) % len(nouns)]
            labels.append(("%s_%s_%05d" % (a, n, i), ["C%05d" % i, "%s-%s%d" % (n, a[:3], i)]))
        csv = "name,aliases\n" + "".join("%s,%s\n" % (nm, "|".join(al)) for nm, al in labels)
        t0 = time.time()
        r = self.req("POST", "/api/v1/projects/%d/labels" % pid, data=csv, content_type="text/csv")
        import_s = time.time() - t0
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()["created"], 10000)
        base = "/api/v1/projects/%d/labels" % pid
        self.assertEqual(self.req("GET", base + "?limit=1").json()["total"], 10000)

        queries = []
        for _ in range(150):
            nm, al = labels[rng.randrange(len(labels))]
            k = rng.randrange(4)
            if k == 0:
                s = rng.randrange(len(nm) - 3)
                queries.append(nm[s:s + rng.randint(3, 9)])
            elif k == 1:
                queries.append(nm)
            elif k == 2:
                queries.append(al[rng.randrange(2)][:rng.randint(3, 6)].upper())
            else:
                queries.append(nm[rng.randrange(len(nm) - 2):][:2])
        queries += ["zzqx", "bolt", "C0000", "_0", "00042"]
        lat = []
        for q in queries:
            ql = q.lower()
            want = [nm for nm, al in labels if ql in nm.lower() or any(ql in a.lower() for a in al)]
            path = base + "?limit=50&q=" + urllib.parse.quote(q)
            t0 = time.perf_counter()
            r = self.srv.request("GET", path, self.admin, keepalive=True)
            lat.append(time.perf_counter() - t0)
            self.assertEqual(r.status, 200, (q, r))
            page = r.json()
            self.assertEqual(page["total"], len(want), q)
            got = [l["name"] for l in page["items"]]
            self.assertEqual(len(got), min(50, len(want)), q)
            self.assertTrue(set(got) <= set(want), q)
            exact = [nm for nm in want if nm.lower() == ql]
            if exact:
                self.assertEqual(got[0], exact[0], q)
            prefix = [nm for nm in want if nm.lower().startswith(ql)]
            if prefix and len(prefix) <= 50:  # prefix matches rank before other matches
                self.assertEqual(set(got[:len(prefix)]), set(prefix), q)
        ms = [x * 1000 for x in lat]
        print("\n  label search at 10,000 labels: %d queries, p50 %.2f ms, p99 %.2f ms, max %.2f ms "
              "(client-side, keep-alive); CSV import of 10,000 labels %.2f s" %
              (len(ms), pct(ms, 0.5), pct(ms, 0.99), max(ms), import_s), flush=True)

    # ---- bad requests ---------------------------------------------------------------------
    def raw(self, head, body=b"", timeout=10):
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=timeout)
        s.sendall(head)
        if body:
            s.sendall(body)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        s.close()
        return int(out.split(b" ")[1]), out

    def test_bad_requests(self):
        p = "/api/v1/projects/%d/labels" % self.project
        r = self.req("POST", p, data='{"name": "x",', content_type="application/json")
        self.assertEqual(r.status, 400)
        self.assertEqual(r.error_code(), "bad_request")
        self.assertIn("malformed JSON", r.json()["error"]["message"])
        self.assertEqual(self.req("POST", p, json_body=[1, 2]).status, 400)
        r = self.req("GET", "/api/v1/no/such/route")
        self.assertEqual((r.status, r.error_code()), (404, "not_found"))
        self.assertEqual(self.srv.request("GET", "/api/v1/nothing").status, 404)  # 404 before 401
        r = self.req("PUT", p)
        self.assertEqual((r.status, r.error_code()), (405, "method_not_allowed"))
        self.assertEqual(set(r.headers["allow"].split(", ")), {"GET", "POST"})
        self.assertEqual(self.req("GET", "/api/v1/projects/abc").status, 404)
        self.assertEqual(self.req("GET", "/api/v1/projects/999999").status, 404)
        r = self.req("POST", p, data=b"\x00\x01", content_type="image/png")
        self.assertEqual((r.status, r.error_code()), (415, "unsupported_media_type"))
        # curl -d sends JSON as form data: accepted.
        r = self.req("POST", p, data='{"name": "via-curl-d"}', content_type="application/x-www-form-urlencoded")
        self.assertEqual(r.status, 201, r)
        # Over the 2 MiB limit: 413 from the declared length, before the body is sent...
        st, out = self.raw(b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: text/csv\r\n"
                           b"Content-Length: 3145728\r\n\r\n" % (p.encode(), self.admin.encode()))
        self.assertEqual(st, 413)
        self.assertIn(b"payload_too_large", out)
        # ...or as soon as a chunked body passes it.
        chunk = b"x" * 65536
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(48)) + b"0\r\n\r\n"
        st, out = self.raw(b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: text/csv\r\n"
                           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % (p.encode(), self.admin.encode()),
                           body)
        self.assertEqual(st, 413)
        # Without a token, a big upload is refused (401) before any of it is stored.
        st, _ = self.raw(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 1000000\r\n\r\n"
                         % p.encode())
        self.assertEqual(st, 401)
        self.assertEqual(os.listdir(os.path.join(self.srv.data, "tmp")), [])

    # ---- audit, metrics ----------------------------------------------------------------
    def test_audit_entries(self):
        r = self.req("POST", "/api/v1/projects", "eng", json_body={"name": "audited-%f" % time.time()})
        pid = r.json()["id"]
        self.req("POST", "/api/v1/projects/%d/labels" % pid, "eng", json_body={"labels": [{"name": "a"}, {"name": "b"}]})
        lid = self.req("POST", "/api/v1/projects/%d/labels" % pid, "eng", json_body={"name": "c"}).json()["id"]
        self.req("PATCH", "/api/v1/labels/%d" % lid, "eng", json_body={"color": "#123456"})
        self.req("DELETE", "/api/v1/labels/%d" % lid, "eng")
        page = self.req("GET", "/api/v1/audit?project_id=%d&limit=100" % pid).json()
        seen = [(e["action"], e["target_type"], e["actor"]) for e in reversed(page["items"])]
        self.assertEqual(seen, [("create", "project", "eng"), ("import", "label", "eng"), ("create", "label", "eng"),
                                ("update", "label", "eng"), ("delete", "label", "eng")])
        imp = [e for e in page["items"] if e["action"] == "import"][0]
        self.assertEqual(imp["details"]["count"], 2)
        self.assertEqual(imp["actor_id"], self.ids["eng"])
        upd = [e for e in page["items"] if e["action"] == "update"][0]
        self.assertEqual((upd["target_id"], upd["details"]), (lid, {"color": "#123456"}))
        self.assertRegex(upd["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        logins = self.req("GET", "/api/v1/audit?action=login&actor_id=%d" % self.ids["eng"]).json()
        self.assertGreaterEqual(logins["total"], 1)
        self.srv.request("POST", "/api/v1/auth/login", json_body={"username": "eng", "password": "bad-password"})
        failed = self.req("GET", "/api/v1/audit?action=login_failed").json()["items"]
        self.assertEqual(failed[0]["details"]["username"], "eng")
        self.assertEqual(self.req("GET", "/api/v1/audit?actor_id=x").status, 400)

    def test_metrics(self):
        self.srv.request("GET", "/healthz")
        self.req("GET", "/api/v1/projects/%d" % self.project)
        self.assertEqual(self.srv.request("GET", "/metrics").status, 401)
        r = self.req("GET", "/metrics", "vie")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith("text/plain"))
        text = r.body.decode()
        self.assertRegex(text, r'autocv_http_requests_total\{method="GET",route="/healthz",status="200"\} [1-9]')
        self.assertRegex(text, r'autocv_http_requests_total\{method="GET",route="/api/v1/projects/\{id\}",'
                               r'status="200"\} [1-9]')
        self.assertRegex(text, r'autocv_http_requests_total\{method="GET",route="/metrics",status="401"\} [1-9]')
        self.assertIn('autocv_http_request_duration_seconds_bucket{method="GET",route="/healthz",le="+Inf"}', text)
        self.assertIn("# TYPE autocv_http_request_duration_seconds histogram", text)
        db = float([l for l in text.splitlines() if l.startswith("autocv_db_size_bytes ")][0].split()[1])
        self.assertGreater(db, 0)
        self.assertIn("autocv_blob_size_bytes ", text)
        self.assertIn("process_resident_memory_bytes ", text)

    def test_idle_memory(self):
        time.sleep(0.5)
        kb = self.srv.rss_kb()
        print("\n  server RSS after setup (users, logins, requests): %.1f MiB" % (kb / 1024), flush=True)
        self.assertLess(kb, 200 * 1024)


class TestServerProcess(unittest.TestCase):
    """Servers of their own: --metrics-public and SIGINT; SIGKILL and restart."""

    def test_metrics_public_and_clean_shutdown(self):
        srv = Server(["--metrics-public", "--token-ttl-hours", "1"])
        try:
            srv.start()
            time.sleep(0.3)
            print("\n  idle RSS of a fresh server: %.1f MiB" % (srv.rss_kb() / 1024), flush=True)
            r = srv.request("GET", "/metrics")
            self.assertEqual(r.status, 200)
            self.assertIn("autocv_http_requests_total", r.body.decode())
            self.assertEqual(srv.request("GET", "/api/v1/openapi.json").status, 401)
            doc = srv.request("GET", "/api/v1/openapi.json", srv.admin_token()).json()
            self.assertEqual(doc["paths"]["/metrics"]["get"]["x-permission"]["kind"], "public")
            srv.proc.send_signal(2)  # SIGINT
            self.assertEqual(srv.proc.wait(timeout=20), 0)
            self.assertIn("stopped", srv.log_text())
            srv.log.close()
            srv.proc = None
            # A second server on the same data directory is refused while one runs.
            srv.start()
            other = Server(data=srv.data)
            with self.assertRaises(AssertionError) as ctx:
                other.start(timeout=5)
            self.assertIn("in use", str(ctx.exception))
            other.cleanup()
        finally:
            srv.cleanup()

    def test_random_admin_password_printed_once(self):
        srv = Server(admin_password=None)
        try:
            srv.start()
            log = srv.log_text()
            pw = log.split("password: ")[1].split()[0]
            self.assertEqual(len(pw), 20)
            srv.login("admin", pw)
            srv.stop()
            srv.start()
            self.assertEqual(srv.log_text().count("password: "), 1)
        finally:
            srv.cleanup()

    def test_sigkill_keeps_acknowledged_writes(self):
        srv = Server()
        try:
            srv.start()
            tok = srv.admin_token()
            pid = srv.request("POST", "/api/v1/projects", tok, {"name": "durable"}).json()["id"]
            acked, lock, stop = {}, threading.Lock(), threading.Event()
            port = srv.port

            def writer(t):
                i = 0
                while not stop.is_set():
                    name = "w%d-%d" % (t, i)
                    i += 1
                    try:
                        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                        c.request("POST", "/api/v1/projects/%d/labels" % pid, json.dumps({"name": name}),
                                  {"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
                        r = c.getresponse()
                        body = r.read()
                        c.close()
                    except OSError:
                        return
                    if r.status == 201:
                        with lock:
                            acked[json.loads(body)["id"]] = name

            threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
            for th in threads:
                th.start()
            time.sleep(1.5)
            srv.kill()  # SIGKILL while the writers are mid-flight
            stop.set()
            for th in threads:
                th.join()
            self.assertGreater(len(acked), 20)
            srv.start()
            tok = srv.admin_token()
            stored, offset = {}, 0
            while True:
                page = srv.request("GET", "/api/v1/projects/%d/labels?limit=1000&offset=%d" % (pid, offset), tok).json()
                stored.update({l["id"]: l["name"] for l in page["items"]})
                offset += 1000
                if offset >= page["total"]:
                    break
            missing = {i: n for i, n in acked.items() if stored.get(i) != n}
            self.assertEqual(missing, {}, "acknowledged labels lost after SIGKILL")
            # Nothing half-written: every stored label has its audit entry (same transaction).
            audit = srv.request("GET", "/api/v1/audit?project_id=%d&target_type=label&action=create&limit=1" % pid,
                                tok).json()
            self.assertEqual(audit["total"], len(stored))
            print("\n  SIGKILL test: %d acknowledged writes, all %d present after restart" % (len(acked), len(stored)),
                  flush=True)
            self.assertEqual(srv.stop(), 0)
            self.assertEqual(os.listdir(os.path.join(srv.data, "tmp")), [])
            db = sqlite3.connect("file:%s?mode=ro" % os.path.join(srv.data, "autocv.db"), uri=True)
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            db.close()
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()
