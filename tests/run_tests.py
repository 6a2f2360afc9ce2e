#!/usr/bin/env python3
"""AutoCV test runner: every cmocka unit-test binary, then every integration test module.

Each unit binary runs as its own process with a timeout (cwd = repository root); its
cmocka summary is parsed. Integration tests are Python unittest modules in
tests/integration/ that drive the real build/autocv. The last line is the summary CI reads:
"N passed, N failed".
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_unit(build, only, timeout):
    passed = failed = 0
    bins = sorted(glob.glob(os.path.join(build, "tests", "test_*")))
    bins = [b for b in bins if os.access(b, os.X_OK) and (not only or any(o in b for o in only))]
    for b in bins:
        name = os.path.basename(b)
        t0 = time.time()
        try:
            p = subprocess.run([b], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=timeout, env=dict(os.environ, CMOCKA_MESSAGE_OUTPUT="STDOUT"))
            out = p.stdout.decode(errors="replace")
            rc = p.returncode
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace") + "\nTIMEOUT after %ds" % timeout
            rc = -1
        ok = re.findall(r"\[  PASSED  \] (\d+) test", out)
        bad = re.findall(r"\[  FAILED  \] (\d+) test", out)
        np_ = sum(int(x) for x in ok)
        nf = sum(int(x) for x in bad)
        if rc != 0 and nf == 0:
            nf = 1  # crashed or timed out without a cmocka summary
        passed += np_
        failed += nf
        status = "ok" if rc == 0 and nf == 0 else "FAIL"
        print("%-28s %3d passed %3d failed  %6.1fs  %s" % (name, np_, nf, time.time() - t0, status), flush=True)
        if status != "ok":
            print(out[-6000:], flush=True)
    return passed, failed


def run_integration(build, only):
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    os.environ["AUTOCV_BUILD"] = os.path.abspath(build)
    loader = unittest.TestLoader()
    files = sorted(glob.glob(os.path.join(ROOT, "tests", "integration", "test_*.py")))
    passed = failed = 0
    for f in files:
        mod = os.path.splitext(os.path.basename(f))[0]
        if only and not any(o in mod for o in only):
            continue
        t0 = time.time()
        suite = loader.loadTestsFromName(mod)
        res = unittest.TextTestRunner(stream=sys.stdout, verbosity=1).run(suite)
        nf = len(res.failures) + len(res.errors)
        np_ = res.testsRun - nf - len(res.skipped)
        passed += np_
        failed += nf
        print("%-28s %3d passed %3d failed  %6.1fs  %s" % (mod, np_, nf, time.time() - t0,
                                                            "ok" if nf == 0 else "FAIL"), flush=True)
    return passed, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--only", default="", help="unit or integration, or a comma list of name fragments")
    ap.add_argument("--timeout", type=int, default=600)
    a = ap.parse_args()
    kinds = {"unit", "integration"}
    frag = [x for x in a.only.split(",") if x and x not in kinds]
    want = {x for x in a.only.split(",") if x in kinds} or kinds
    t0 = time.time()
    p = f = 0
    if "unit" in want:
        p1, f1 = run_unit(a.build, frag, a.timeout)
        p += p1
        f += f1
    if "integration" in want:
        p2, f2 = run_integration(a.build, frag)
        p += p2
        f += f2
    print("total time %.0fs" % (time.time() - t0))
    print("%d passed, %d failed" % (p, f))
    sys.exit(1 if f else 0)


if __name__ == "__main__":
    main()
