"""The web UI's unit tests (issue 7): Vitest over web/src/**/*.test.js — the canvas geometry,
mask RLE encoding and decoding, the API client and the messages of both languages (i18n) — run
with the project's pinned Vitest (web/node_modules, installed by `make deps`). Each Vitest test must pass, and there must be
some: a missing or empty suite fails here."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from helpers import ROOT

NODE = shutil.which("node") or "/usr/bin/node"
WEB = os.path.join(ROOT, "web")
VITEST = os.path.join(WEB, "node_modules", "vitest", "vitest.mjs")


class TestWebUnit(unittest.TestCase):
    def test_vitest(self):
        self.assertTrue(os.path.exists(VITEST), "Vitest is not installed: run make deps (npm ci in web/)")
        with tempfile.TemporaryDirectory(prefix="autocv-vitest-") as tmp:
            out = os.path.join(tmp, "vitest.json")
            p = subprocess.run([NODE, VITEST, "run", "--reporter=json", "--outputFile=" + out], cwd=WEB,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
            log = p.stdout.decode(errors="replace")
            self.assertTrue(os.path.exists(out), "Vitest wrote no report:\n" + log[-4000:])
            with open(out) as f:
                r = json.load(f)
        failed = [t["fullName"] + ": " + " ".join(t.get("failureMessages") or [])[:600]
                  for s in r.get("testResults", []) for t in s.get("assertionResults", []) if t["status"] == "failed"]
        self.assertEqual(failed, [], "Vitest failures:\n" + "\n".join(failed))
        self.assertEqual(p.returncode, 0, log[-4000:])
        self.assertGreaterEqual(r["numPassedTests"], 10, "too few Vitest tests ran:\n" + log[-2000:])
        suites = {os.path.relpath(s["name"], WEB) for s in r.get("testResults", [])}
        for need in ("geometry", "rle", "api"):
            self.assertTrue(any(need in s for s in suites), "no Vitest suite for %s in %s" % (need, sorted(suites)))
        print("vitest: %d passed in %d files" % (r["numPassedTests"], len(suites)))


if __name__ == "__main__":
    unittest.main()
