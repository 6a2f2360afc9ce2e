"""Security and robustness checks of the platform server over real HTTP: tokens of a disabled
user stay dead after the user is enabled again, label CSV bodies are held to the JSON limit
(they are parsed in memory), a CSV record with a huge number of fields is refused without
exhausting memory, and cross-project ids in paths and bodies are refused."""
import io
import os
import socket
import struct
import time
import unittest
import zlib

from server import Server


def png_bytes(w=8, h=6):
    """A tiny valid RGB PNG."""
    rows = b"".join(b"\x00" + bytes([(x * 30 + y) % 256 for x in range(w * 3)]) for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def multipart(files):
    boundary = "----acvsec7f3a"
    out = io.BytesIO()
    for name, data in files:
        out.write(("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
                   "Content-Type: application/octet-stream\r\n\r\n" % (boundary, name)).encode())
        out.write(data)
        out.write(b"\r\n")
    out.write(("--%s--\r\n" % boundary).encode())
    return out.getvalue(), "multipart/form-data; boundary=" + boundary


class SecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(args=["--max-json-mb", "1", "--no-access-log"]).start()
        cls.admin = cls.srv.admin_token()

    @classmethod
    def tearDownClass(cls):
        cls.srv.cleanup()

    def req(self, *a, **k):
        return self.srv.request(*a, **k)

    def make_user(self, name, roles=("engineer",)):
        r = self.req("POST", "/api/v1/users", self.admin,
                     {"username": name, "password": name + "-password", "roles": list(roles)})
        self.assertEqual(r.status, 201, r)
        return r.json()["id"], self.srv.login(name, name + "-password")

    def test_reenabled_user_does_not_get_old_tokens_back(self):
        uid, session = self.make_user("sec-disable")
        r = self.req("POST", "/api/v1/tokens", session, {"name": "script"})
        self.assertEqual(r.status, 201, r)
        api = r.json()["token"]
        for t in (session, api):
            self.assertEqual(self.req("GET", "/api/v1/auth/me", t).status, 200)
        r = self.req("PATCH", "/api/v1/users/%d" % uid, self.admin, {"disabled": True})
        self.assertEqual(r.status, 200, r)
        for t in (session, api):
            self.assertEqual(self.req("GET", "/api/v1/auth/me", t).status, 401)
        r = self.req("PATCH", "/api/v1/users/%d" % uid, self.admin, {"disabled": False})
        self.assertEqual(r.status, 200, r)
        # "Disabling a user ends all their tokens": enabling the account again must not revive
        # a token that was stolen before it was disabled.
        for t in (session, api):
            r = self.req("GET", "/api/v1/auth/me", t)
            self.assertEqual(r.status, 401, r)
        fresh = self.srv.login("sec-disable", "sec-disable-password")
        self.assertEqual(self.req("GET", "/api/v1/auth/me", fresh).status, 200)
        # the revocations are in the audit log with the disabling
        r = self.req("GET", "/api/v1/audit?target_type=user&target_id=%d&action=update" % uid, self.admin)
        self.assertEqual(r.status, 200, r)
        details = [e["details"] for e in r.json()["items"]]
        self.assertTrue(any(d.get("tokens_revoked") == 2 for d in details), details)

    def test_login_throttled_after_repeated_failures(self):
        self.make_user("sec-guess")
        login = lambda pw: self.req("POST", "/api/v1/auth/login", None, {"username": "sec-guess", "password": pw})
        for _ in range(4):
            self.assertEqual(login("wrong").status, 401)
        self.assertEqual(login("wrong").status, 401)  # the fifth failure starts the wait
        r = login("sec-guess-password")  # even the right password waits
        self.assertEqual(r.status, 429, r)
        self.assertIn("try again", r.json()["error"]["message"])
        # other users are not affected
        self.assertEqual(self.req("GET", "/api/v1/auth/me", self.admin).status, 200)
        time.sleep(2.2)
        self.assertEqual(login("sec-guess-password").status, 200)
        self.assertEqual(login("wrong").status, 401)  # success reset the count
        self.assertEqual(login("sec-guess-password").status, 200)

    def project(self, name):
        r = self.req("POST", "/api/v1/projects", self.admin, {"name": name})
        self.assertEqual(r.status, 201, r)
        return r.json()["id"]

    def test_label_csv_is_held_to_the_json_limit(self):
        pid = self.project("sec-csv-limit")
        # 1.5 MiB of CSV against --max-json-mb 1 (uploads may be 1 GiB): CSV is parsed in memory
        # like JSON, so 413 from the declared length, before the body is sent.
        st, out = self.raw_post("/api/v1/projects/%d/labels" % pid,
                                ["Authorization: Bearer " + self.admin, "Content-Type: text/csv",
                                 "Content-Length: %d" % (3 << 19)])
        self.assertEqual(st, 413, out)
        self.assertIn(b"payload_too_large", out)
        r = self.req("GET", "/api/v1/projects/%d/labels" % pid, self.admin)
        self.assertEqual(r.json()["total"], 0)
        # a small CSV still works
        r = self.req("POST", "/api/v1/projects/%d/labels" % pid, self.admin, data=b"name\nok\n", content_type="text/csv")
        self.assertEqual(r.status, 201, r)

    def raw_post(self, path, headers, body=b""):
        """Sends a request by hand (headers as given) and returns (status, response bytes)."""
        with socket.create_connection(("127.0.0.1", self.srv.port), timeout=30) as sock:
            sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" +
                         b"".join(h.encode() + b"\r\n" for h in headers) + b"\r\n" + body)
            out = b""
            while b"\r\n\r\n" not in out or b"}" not in out:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                out += chunk
        return int(out.split(b" ")[1]), out

    def test_json_routes_hold_untyped_bodies_to_the_json_limit(self):
        # a JSON route (login needs no token) sent a body without a type, or as a form: it is
        # parsed in memory, so the JSON limit (1 MiB here) answers 413 from the declared length
        # instead of streaming up to the upload limit into a temporary file
        tmp = os.path.join(self.srv.data, "tmp")
        before = set(os.listdir(tmp)) if os.path.isdir(tmp) else set()
        for ctype in (None, "application/x-www-form-urlencoded", "application/problem+json"):
            hdrs = ["Content-Length: %d" % (1 << 30)] + (["Content-Type: " + ctype] if ctype else [])
            st, out = self.raw_post("/api/v1/auth/login", hdrs)
            self.assertEqual(st, 413, out)
            self.assertIn(b"payload_too_large", out)
        after = set(os.listdir(tmp)) if os.path.isdir(tmp) else set()
        self.assertEqual(after - before, set())
        # a route that takes files still takes an untyped body up to the upload limit: 2 MiB of
        # it reach the handler (which refuses it as no image, not as too large)
        pid = self.project("sec-untyped")
        st, out = self.raw_post("/api/v1/projects/%d/images" % pid,
                                ["Authorization: Bearer " + self.admin, "Content-Length: %d" % (2 << 20)],
                                b"\0" * (2 << 20))
        self.assertNotEqual(st, 413, out)
        self.assertEqual(self.req("GET", "/healthz").status, 200)

    def test_multipart_text_fields_are_bounded(self):
        # many text fields with long names and one-byte values: names count towards the 1 MiB of
        # form fields, and the number of fields towards the parts limit
        pid = self.project("sec-fields")
        boundary = "----acvfields"
        parts = b"".join(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\nx\r\n"
                          % (boundary, "n%05d" % i + "a" * 4000)).encode() for i in range(400))
        body = parts + ("--%s--\r\n" % boundary).encode()
        r = self.req("POST", "/api/v1/projects/%d/images" % pid, self.admin, data=body,
                     content_type="multipart/form-data; boundary=" + boundary)
        self.assertEqual(r.status, 413, r)
        self.assertIn("fields", r.json()["error"]["message"])
        body = b"".join(("--%s\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nx\r\n"
                         % boundary).encode() for i in range(10001)) + ("--%s--\r\n" % boundary).encode()
        r = self.req("POST", "/api/v1/projects/%d/images" % pid, self.admin, data=body,
                     content_type="multipart/form-data; boundary=" + boundary)
        self.assertEqual(r.status, 413, r)
        self.assertIn("parts", r.json()["error"]["message"])
        self.assertEqual(self.req("GET", "/healthz").status, 200)

    def test_csv_record_with_too_many_fields(self):
        pid = self.project("sec-csv-fields")
        body = b"name\n" + b"," * 200000 + b"\n"
        r = self.req("POST", "/api/v1/projects/%d/labels" % pid, self.admin, data=body, content_type="text/csv")
        self.assertEqual(r.status, 422, r)
        self.assertIn("fields", r.json()["error"]["message"])
        self.assertEqual(self.req("GET", "/healthz").status, 200)

    def test_cross_project_ids_are_refused(self):
        eng_id, eng = self.make_user("sec-eng")
        a = self.project("sec-a")
        b = self.project("sec-b")
        self.assertEqual(self.req("PUT", "/api/v1/projects/%d/members/%d" % (a, eng_id), self.admin,
                                  {"role": "engineer"}).status, 201)
        data, ct = multipart([("a.png", png_bytes())])
        r = self.req("POST", "/api/v1/projects/%d/images" % b, self.admin, data=data, content_type=ct)
        self.assertEqual(r.status, 201, r)
        img_b = r.json()["images"][0]["id"]
        r = self.req("POST", "/api/v1/projects/%d/images" % a, self.admin, data=data, content_type=ct)
        img_a = r.json()["images"][0]["id"]
        self.assertNotEqual(img_a, img_b)
        # the engineer of A cannot see B's image by id, nor put it into a set of A
        for path in ("/api/v1/images/%d", "/api/v1/images/%d/file", "/api/v1/images/%d/thumbnail"):
            self.assertEqual(self.req("GET", path % img_b, eng).status, 404)
        self.assertEqual(self.req("DELETE", "/api/v1/images/%d" % img_b, eng).status, 404)
        r = self.req("POST", "/api/v1/projects/%d/annotation-sets" % a, eng,
                     {"name": "s", "task": "det", "image_ids": [img_a, img_b]})
        self.assertEqual(r.status, 422, r)
        r = self.req("POST", "/api/v1/projects/%d/annotation-sets" % a, eng, {"name": "s", "task": "det",
                                                                             "image_ids": [img_a]})
        self.assertEqual(r.status, 201, r)
        sid = r.json()["id"]
        self.assertEqual(self.req("POST", "/api/v1/annotation-sets/%d/items" % sid, eng,
                                  {"image_ids": [img_b]}).status, 422)
        # B's image through A's set: not an item of the set
        self.assertEqual(self.req("GET", "/api/v1/annotation-sets/%d/items/%d" % (sid, img_b), eng).status, 404)
        self.assertEqual(self.req("PUT", "/api/v1/annotation-sets/%d/items/%d" % (sid, img_b), eng,
                                  {"revision": 0, "shapes": []}).status, 404)
        # B's set from A's image list filter
        r = self.req("POST", "/api/v1/projects/%d/annotation-sets" % b, self.admin, {"name": "sb", "task": "det",
                                                                                   "filter": {}})
        sb = r.json()["id"]
        self.assertEqual(self.req("GET", "/api/v1/projects/%d/images?set_id=%d" % (a, sb), eng).status, 422)
        self.assertEqual(self.req("GET", "/api/v1/annotation-sets/%d" % sb, eng).status, 404)
        # a label of B as the parent of a label of A
        r = self.req("POST", "/api/v1/projects/%d/labels" % b, self.admin, {"name": "b-label"})
        lb = r.json()["id"]
        r = self.req("POST", "/api/v1/projects/%d/labels" % a, eng, {"name": "child", "parent_id": lb})
        self.assertEqual(r.status, 422, r)

    def test_paging_and_id_overflow(self):
        for q in ("limit=0", "limit=1001", "limit=99999999999999999999", "offset=-1", "limit=1x",
                  "offset=99999999999999999999"):
            r = self.req("GET", "/api/v1/projects?" + q, self.admin)
            self.assertEqual(r.status, 400, (q, r))
        for p in ("/api/v1/labels/0", "/api/v1/labels/-1", "/api/v1/labels/99999999999999999999",
                  "/api/v1/labels/1e3", "/api/v1/images/%2e%2e"):
            self.assertEqual(self.req("GET", p, self.admin).status, 404, p)

    def test_wrong_json_types(self):
        cases = [
            ("POST", "/api/v1/auth/login", {"username": 5, "password": "x"}),
            ("POST", "/api/v1/auth/login", {"username": None, "password": None}),
            ("POST", "/api/v1/users", {"username": ["a"], "password": "password1"}),
            ("POST", "/api/v1/tokens", {"name": {"a": 1}}),
            ("POST", "/api/v1/projects", {"name": 1}),
        ]
        for method, path, body in cases:
            r = self.req(method, path, self.admin, body)
            self.assertIn(r.status, (400, 401, 422), (path, body, r))
        r = self.req("POST", "/api/v1/projects", self.admin, data=b"[" * 100000 + b"]" * 100000,
                     content_type="application/json")
        self.assertEqual(r.status, 400, r)
        self.assertEqual(self.req("GET", "/healthz").status, 200)


if __name__ == "__main__":
    unittest.main()
