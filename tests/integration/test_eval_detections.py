"""autocv eval-detections against an independent Python implementation of the COCO detection
protocol (pycocotools' COCOeval with iouType "bbox", written out here from its definition since
pycocotools is not available), on crafted cases and on a randomized set of a few hundred images
with crowd regions, non-contiguous category ids, tied scores and more than 100 detections in an
image; plus the counting metrics, the text report and bad input.

Coordinates in the generated files are multiples of 1/16 and scores have 3 decimals, so that
they are exact in float32 (autocv's box type) and both sides see the same numbers; ties in
scores and IoUs are then real ties, resolved the same way by both (stable orders)."""
import json
import os
import random
import shutil
import sys
import unittest
from collections import defaultdict

import numpy as np

from helpers import run, tmpdir

TOL = 1e-6
IOU_THRS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
REC_THRS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
MAX_DETS = [1, 10, 100]
AREA_RNG = [[0, 1e5 ** 2], [0, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]]  # all, small, medium, large
SUMMARY_KEYS = ["map50_95", "map50", "map75", "map_small", "map_medium", "map_large",
                "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large"]


# ---- the reference: COCOeval (bbox) ----

def bbox_iou(d, g, crowd):
    """IoU of two [x, y, w, h] boxes; for a crowd gt the union is the detection's area."""
    da, ga = d[2] * d[3], g[2] * g[3]
    w = min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0])
    if w <= 0:
        return 0.0
    h = min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1])
    if h <= 0:
        return 0.0
    i = w * h
    return i / (da if crowd else da + ga - i)


def evaluate_img(gt, dt, arng, max_det):
    """Greedy matching of one image and category at every IoU threshold (evaluateImg)."""
    if not gt and not dt:
        return None
    gig = [1 if g["iscrowd"] or g["area"] < arng[0] or g["area"] > arng[1] else 0 for g in gt]
    order = sorted(range(len(gt)), key=lambda j: gig[j])  # stable: non-ignored first
    gt = [gt[j] for j in order]
    gig = [gig[j] for j in order]
    dt = sorted(dt, key=lambda d: -d["score"])[:max_det]  # stable
    T, G, D = len(IOU_THRS), len(gt), len(dt)
    gtm = np.zeros((T, G), bool)
    dtm = np.zeros((T, D), bool)
    dtig = np.zeros((T, D), bool)
    ious = [[bbox_iou(d["bbox"], g["bbox"], g["iscrowd"]) for g in gt] for d in dt]
    for t, thr in enumerate(IOU_THRS):
        for di in range(D):
            best, m = min(thr, 1 - 1e-10), -1
            for gi in range(G):
                if gtm[t, gi] and not gt[gi]["iscrowd"]:
                    continue
                if m > -1 and gig[m] == 0 and gig[gi] == 1:
                    break
                if ious[di][gi] < best:
                    continue
                best, m = ious[di][gi], gi
            if m == -1:
                continue
            dtig[t, di] = gig[m]
            dtm[t, di] = True
            gtm[t, m] = True
    outside = np.array([d["area"] < arng[0] or d["area"] > arng[1] for d in dt], bool).reshape(1, D)
    dtig = dtig | (~dtm & outside)
    return {"scores": np.array([d["score"] for d in dt], float), "dtm": dtm, "dtig": dtig,
            "gig": np.array(gig, int)}


def coco_reference(gt_file, results, count_thr=0.5):
    """The metrics autocv eval-detections --json reports, computed the COCOeval way."""
    imgs = sorted(im["id"] for im in gt_file["images"])
    cats = sorted(c["id"] for c in gt_file["categories"])
    names = {c["id"]: c.get("name", str(c["id"])) for c in gt_file["categories"]}
    gts, dts = defaultdict(list), defaultdict(list)
    for a in gt_file.get("annotations", []):
        g = dict(a, iscrowd=int(bool(a.get("iscrowd", 0))))
        g.setdefault("area", a["bbox"][2] * a["bbox"][3])
        gts[a["image_id"], a["category_id"]].append(g)
    for r in results:
        dts[r["image_id"], r["category_id"]].append(dict(r, area=r["bbox"][2] * r["bbox"][3]))
    T, R, K, A, M = len(IOU_THRS), len(REC_THRS), len(cats), len(AREA_RNG), len(MAX_DETS)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    for k, c in enumerate(cats):
        for a, arng in enumerate(AREA_RNG):
            E = [evaluate_img(gts[i, c], dts[i, c], arng, MAX_DETS[-1]) for i in imgs]
            E = [e for e in E if e is not None]
            if not E:
                continue
            for m, md in enumerate(MAX_DETS):
                scores = np.concatenate([e["scores"][:md] for e in E])
                inds = np.argsort(-scores, kind="mergesort")
                dtm = np.concatenate([e["dtm"][:, :md] for e in E], axis=1)[:, inds]
                dtig = np.concatenate([e["dtig"][:, :md] for e in E], axis=1)[:, inds]
                npig = np.count_nonzero(np.concatenate([e["gig"] for e in E]) == 0)
                if npig == 0:
                    continue
                tp_sum = np.cumsum(dtm & ~dtig, axis=1).astype(float)
                fp_sum = np.cumsum(~dtm & ~dtig, axis=1).astype(float)
                for t in range(T):
                    tp, fp = tp_sum[t], fp_sum[t]
                    nd = len(tp)
                    rc = tp / npig
                    pr = (tp / (fp + tp + np.spacing(1))).tolist()
                    recall[t, k, a, m] = rc[-1] if nd else 0
                    for i in range(nd - 1, 0, -1):
                        if pr[i] > pr[i - 1]:
                            pr[i - 1] = pr[i]
                    idx = np.searchsorted(rc, REC_THRS, side="left")
                    precision[t, :, k, a, m] = [pr[i] if i < nd else 0.0 for i in idx]

    def mean(s):
        s = s[s > -1]
        return float(np.mean(s)) if s.size else None

    def ap(iou=None, area=0, m=2):
        s = precision[:, :, :, area, m]
        return mean(s if iou is None else s[np.where(IOU_THRS == iou)[0]])

    def ar(area=0, m=2):
        return mean(recall[:, :, area, m])

    out = {"map50_95": ap(), "map50": ap(.5), "map75": ap(.75), "map_small": ap(area=1),
           "map_medium": ap(area=2), "map_large": ap(area=3), "ar1": ar(m=0), "ar10": ar(m=1),
           "ar100": ar(), "ar_small": ar(1), "ar_medium": ar(2), "ar_large": ar(3), "images": len(imgs)}
    # counting over every gt image: true counts leave crowd regions out
    err = np.zeros(K)
    exact = 0
    for i in imgs:
        ok = True
        for k, c in enumerate(cats):
            n_true = sum(1 for g in gts[i, c] if not g["iscrowd"])
            n_pred = sum(1 for d in dts[i, c] if d["score"] >= count_thr)
            err[k] += abs(n_true - n_pred)
            ok = ok and n_true == n_pred
        exact += ok
    n = max(len(imgs), 1)
    out["count_mae"] = float(err.sum() / (n * K)) if imgs else None
    out["count_exact"] = exact / n if imgs else None
    out["count_mae_per_class"] = [float(e / n) if imgs else None for e in err]
    out["per_class"] = []
    out["pr_curves"] = []
    for k, c in enumerate(cats):
        valid = precision[0, 0, k, 0, 2] > -1
        out["per_class"].append({
            "name": names[c],
            "ap": float(np.mean(precision[:, :, k, 0, 2])) if valid else None,
            "ap50": float(np.mean(precision[0, :, k, 0, 2])) if valid else None,
            "ap75": float(np.mean(precision[5, :, k, 0, 2])) if valid else None,
            "ar100": float(np.mean(recall[:, k, 0, 2])) if valid else None,
            "gt": sum(1 for i in imgs for g in gts[i, c] if not g["iscrowd"]),
            "pred": sum(1 for r in results if r["category_id"] == c),
            "count_mae": out["count_mae_per_class"][k]})
        out["pr_curves"].append({"name": names[c], "precision": precision[0, :, k, 0, 2].tolist() if valid else None})
    return out


# ---- fixtures ----

def q16(v):
    """v rounded to a multiple of 1/16 (exact in float32 at image scale)."""
    return round(v * 16) / 16


def random_set(seed=7, n_images=300):
    """A COCO ground truth and results pair: 5 categories with non-contiguous ids, one that only
    the ground truth has (never predicted), one that only the predictions have; small, medium and
    large objects, annotation areas that differ from the box area, crowd regions with detections
    inside, duplicates, wrong classes, false positives, tied scores, images without objects,
    and a few images with more than 100 detections of one class."""
    rng = random.Random(seed)
    cat_ids = [3, 7, 8, 20, 42]
    gt_only, pred_only = 50, 99
    cats = [{"id": c, "name": "part%d" % c} for c in cat_ids + [gt_only, pred_only]]
    rng.shuffle(cats)
    images, anns, res = [], [], []

    def det(box, cat, iid, jitter, lo, hi):
        x, y, w, h = box
        w2 = max(0.0, q16(w * rng.uniform(1 - jitter, 1 + jitter)))
        h2 = max(0.0, q16(h * rng.uniform(1 - jitter, 1 + jitter)))
        res.append({"image_id": iid, "category_id": cat, "score": round(rng.uniform(lo, hi), 3),
                    "bbox": [q16(x + w * rng.uniform(-jitter, jitter)), q16(y + h * rng.uniform(-jitter, jitter)),
                             w2, h2]})

    for n, iid in enumerate(rng.sample(range(1, 1000000), n_images)):
        W, H = rng.choice([(640, 480), (320, 320), (1024, 768)])
        images.append({"id": iid, "width": W, "height": H, "file_name": "%d.jpg" % iid})
        objs = []
        for _ in range(rng.choice([0, 1, 2, 3, 4, 6, 9])):
            c = rng.choice(cat_ids + [gt_only] if rng.random() < 0.05 else cat_ids)
            side = rng.choice([rng.uniform(3, 30), rng.uniform(28, 100), rng.uniform(90, 300)])
            w, h = q16(side * rng.uniform(0.6, 1.4)), q16(side * rng.uniform(0.6, 1.4))
            a = {"id": len(anns) + 1, "image_id": iid, "category_id": c,
                 "bbox": [q16(rng.uniform(0, W - w)), q16(rng.uniform(0, H - h)), w, h], "iscrowd": 0}
            if rng.random() < 0.7:
                a["area"] = q16(w * h * rng.uniform(0.5, 1.0))  # a segmentation's area
            anns.append(a)
            objs.append(a)
        if rng.random() < 0.12:  # a crowd region, with detections inside it
            c = rng.choice(cat_ids)
            w, h = q16(rng.uniform(60, 250)), q16(rng.uniform(60, 250))
            crowd = [q16(rng.uniform(0, W - w)), q16(rng.uniform(0, H - h)), w, h]
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": c, "bbox": crowd, "iscrowd": 1,
                         "area": q16(w * h * 0.8)})
            for _ in range(rng.randint(1, 5)):
                s = rng.uniform(0.1, 0.4)
                det([crowd[0] + rng.uniform(0, 1 - s) * w, crowd[1] + rng.uniform(0, 1 - s) * h, s * w, s * h],
                    c, iid, 0.05, 0.2, 0.9)
        for a in objs:
            if a["category_id"] == gt_only:
                continue
            if rng.random() < 0.85:
                det(a["bbox"], a["category_id"], iid, 0.15, 0.3, 1.0)
            if rng.random() < 0.2:
                det(a["bbox"], a["category_id"], iid, 0.3, 0.1, 0.9)  # a duplicate
            if rng.random() < 0.1:
                det(a["bbox"], rng.choice(cat_ids), iid, 0.1, 0.2, 0.8)  # maybe the wrong class
        for _ in range(rng.randint(0, 3)):  # false positives, some of the predictions-only class
            side = rng.uniform(5, 200)
            det([rng.uniform(0, W - side), rng.uniform(0, H - side), side, side],
                rng.choice(cat_ids + [pred_only]), iid, 0.3, 0.0, 0.7)
        if n % 97 == 5 and objs:  # more than 100 detections of one class in one image
            a = objs[0]
            for _ in range(120):
                det(a["bbox"], cat_ids[0], iid, 0.5, 0.0, 1.0)
    rng.shuffle(images)
    rng.shuffle(res)
    return {"images": images, "categories": cats, "annotations": anns}, res


def box(iid, cat, x, y, w, h, score=None, **kw):
    b = {"image_id": iid, "category_id": cat, "bbox": [x, y, w, h]}
    if score is not None:
        b["score"] = score
    b.update(kw)
    return b


class TestEvalDetections(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tmpdir()
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def write(self, obj):
        type(self).n += 1
        p = os.path.join(self.tmp, "f%d.json" % self.n)
        with open(p, "w") as f:
            json.dump(obj, f)
        return p

    def evaluate(self, gt, res, *extra):
        rc, out, err = run("eval-detections", "--gt", self.write(gt), "--pred", self.write(res), "--json", *extra)
        self.assertEqual(rc, 0, err)
        return json.loads(out.strip().splitlines()[-1])

    def compare(self, got, ref, where=""):
        """Asserts got == ref within TOL (None == null), recursively; returns the largest difference."""
        if ref is None or got is None:
            self.assertEqual(got, ref, where)
            return 0.0
        if isinstance(ref, dict):
            worst = 0.0
            for k, v in ref.items():
                self.assertIn(k, got, where)
                worst = max(worst, self.compare(got[k], v, where + "." + k))
            return worst
        if isinstance(ref, list):
            self.assertEqual(len(got), len(ref), where)
            return max([self.compare(g, r, "%s[%d]" % (where, i)) for i, (g, r) in enumerate(zip(got, ref))] + [0.0])
        if isinstance(ref, str):
            self.assertEqual(got, ref, where)
            return 0.0
        self.assertAlmostEqual(got, ref, delta=TOL, msg=where)
        return abs(got - ref)

    def check_against_reference(self, gt, res, thr=None):
        got = self.evaluate(gt, res, *(["--count-threshold", str(thr)] if thr is not None else []))
        return got, self.compare(got, coco_reference(gt, res, 0.5 if thr is None else thr))

    # ---- crafted cases, hand-checked (and against the reference) ----

    def gt2(self, anns, ncat=2):
        cats = [{"id": 10 * (c + 1), "name": "c%d" % c} for c in range(ncat)]
        return {"images": [{"id": 1}, {"id": 2}], "categories": cats, "annotations": anns}

    def test_perfect(self):
        anns = [box(1, 10, 10, 10, 20, 20, id=1, area=400), box(1, 20, 100, 100, 50, 40, id=2, area=2000),
                box(2, 10, 0, 0, 200, 100, id=3, area=20000)]
        res = [dict(a, score=0.9) for a in anns]
        got, _ = self.check_against_reference(self.gt2(anns), res)
        # every detection a true positive at every threshold: precision 1 at every recall point
        # (1 / (1 + 2^-52) in COCO's formula), so every AP and AR is 1; each size has a class
        for k in SUMMARY_KEYS:
            self.assertAlmostEqual(got[k], 1.0, delta=TOL, msg=k)
        self.assertEqual(got["count_mae"], 0.0)
        self.assertEqual(got["count_exact"], 1.0)
        self.assertEqual(got["images"], 2)

    def test_no_predictions(self):
        anns = [box(1, 10, 10, 10, 20, 20, id=1), box(2, 20, 0, 0, 200, 100, id=2)]
        got, _ = self.check_against_reference(self.gt2(anns), [])
        for k in ("map50_95", "map50", "ar100", "map_small", "map_large"):
            self.assertEqual(got[k], 0.0, k)
        self.assertIsNone(got["map_medium"])  # no medium gt in any class
        # one object missed in each image: |0 - 1| for one class of two, in both images
        self.assertAlmostEqual(got["count_mae"], 0.5, delta=TOL)
        self.assertEqual(got["count_exact"], 0.0)

    def test_duplicate_and_crowd(self):
        anns = [box(1, 10, 0, 0, 100, 100, id=1), box(1, 10, 300, 300, 100, 100, id=2),
                box(2, 10, 0, 0, 200, 200, id=3, iscrowd=1)]
        res = [box(1, 10, 0, 0, 100, 100, 0.9), box(1, 10, 0, 0, 100, 100, 0.8),   # duplicate: FP
               box(1, 10, 300, 300, 100, 100, 0.7),
               box(2, 10, 10, 10, 50, 50, 0.95), box(2, 10, 100, 100, 50, 50, 0.85)]  # inside the crowd: ignored
        got, _ = self.check_against_reference(self.gt2(anns, 1), res)
        # ranked: crowd(ign) .95, TP .9, crowd(ign) .85, FP .8, TP .7 -> recall 1/2 at precision 1,
        # recall 1 at precision 2/3; monotone: recall points 0..50 -> 1, 51..100 -> 2/3
        ap = (51 * 1.0 + 50 * 2 / 3) / 101
        self.assertAlmostEqual(got["map50"], ap, delta=TOL)
        self.assertAlmostEqual(got["map50_95"], ap, delta=TOL)
        self.assertAlmostEqual(got["pr_curves"][0]["precision"][50], 1.0, delta=TOL)
        self.assertAlmostEqual(got["pr_curves"][0]["precision"][51], 2 / 3, delta=TOL)
        self.assertEqual(got["per_class"][0]["gt"], 2)
        # counting at 0.5: image 1 has 3 predictions for 2 objects, image 2 two for none (crowd)
        self.assertAlmostEqual(got["count_mae"], (1 + 2) / 2, delta=TOL)
        self.assertEqual(got["count_exact"], 0.0)

    def test_classes_only_in_predictions_or_ground_truth(self):
        anns = [box(1, 10, 0, 0, 50, 50, id=1), box(2, 20, 0, 0, 50, 50, id=2)]
        res = [box(1, 10, 0, 0, 50, 50, 0.9), box(2, 30, 0, 0, 50, 50, 0.9)]
        got, _ = self.check_against_reference(self.gt2(anns, 3), res)
        pc = {c["name"]: c for c in got["per_class"]}
        self.assertAlmostEqual(pc["c0"]["ap"], 1.0, delta=TOL)   # detected
        self.assertEqual(pc["c1"]["ap"], 0.0)                    # only in the ground truth: AP 0, averaged
        self.assertIsNone(pc["c2"]["ap"])                        # only in the predictions: no AP, left out
        self.assertIsNone(got["pr_curves"][2]["precision"])
        self.assertAlmostEqual(got["map50_95"], 0.5, delta=TOL)

    def test_areas_and_given_area(self):
        # the annotation's area decides the range, not the box: a 100x100 box with area 500 is small
        anns = [box(1, 10, 0, 0, 100, 100, id=1, area=500), box(1, 10, 200, 0, 20, 20, id=2),
                box(2, 10, 0, 0, 40, 40, id=3)]
        res = [box(1, 10, 0, 0, 100, 100, 0.9), box(2, 10, 0, 0, 40, 40, 0.8)]
        got, _ = self.check_against_reference(self.gt2(anns, 1), res)
        # small: gts 1 (area 500) and 2 (400) count, gt 3 (1600) is ignored and so is the detection
        # matching it. Ranked: TP .9 -> recall 1/2 at precision 1, then nothing: AP = 51/101.
        # medium: gt 3 alone; the detection on gt 1 (ignored there) is ignored too: AP 1
        self.assertAlmostEqual(got["map_small"], 51 / 101, delta=TOL)
        self.assertAlmostEqual(got["map_medium"], 1.0, delta=TOL)
        self.assertIsNone(got["map_large"])
        self.assertAlmostEqual(got["ar_small"], 0.5, delta=TOL)

    def test_exact_ties(self):
        """Ties resolved as COCOeval resolves them: equal scores keep image-id order, then file order;
        an exact IoU tie goes to the later gt; IoU exactly at a threshold matches; an area of exactly
        32^2 is both small and medium."""
        cats = [{"id": c, "name": n} for c, n in ((1, "a"), (2, "b"), (3, "c"), (4, "d"))]
        gt = {"images": [{"id": 5}, {"id": 2}], "categories": cats, "annotations": [
            box(5, 1, 0, 0, 100, 100, id=1),
            box(5, 2, 300, 300, 100, 100, id=2),
            box(5, 3, 0, 200, 100, 100, id=3), box(5, 3, 50, 200, 100, 100, id=4),
            box(5, 4, 500, 0, 32, 32, id=5)]}
        res = [box(5, 1, 200, 200, 100, 100, 0.8), box(5, 1, 0, 0, 100, 100, 0.8),  # a: FP, then TP
               box(5, 2, 300, 300, 100, 100, 0.6), box(2, 2, 0, 0, 100, 100, 0.6),  # b: image 2 first: FP, TP
               box(5, 3, 25, 200, 100, 100, 0.9),   # c: IoU 0.6 with both gts (7500 / 12500): the later wins
               box(5, 3, 50, 200, 100, 100, 0.8),   # exact on the later gt
               box(5, 4, 500, 0, 32, 32, 0.9)]
        got, _ = self.check_against_reference(gt, res)
        pc = {c["name"]: c for c in got["per_class"]}
        # a and b: ranked FP then TP: precision 1/2 at every recall point, at every threshold
        self.assertAlmostEqual(pc["a"]["ap"], 0.5, delta=TOL)
        self.assertAlmostEqual(pc["b"]["ap"], 0.5, delta=TOL)
        # c, IoU thresholds .5 .55 .6: .9 takes gt 4, .8 is a FP -> recall 1/2 at precision 1: 51/101;
        # from .65 on: .9 is a FP, .8 takes gt 4 -> precision 1/2 up to recall 1/2: 25.5/101
        self.assertAlmostEqual(pc["c"]["ap50"], 51 / 101, delta=TOL)
        self.assertAlmostEqual(pc["c"]["ap"], (3 * 51 + 7 * 25.5) / 1010, delta=TOL)
        self.assertAlmostEqual(pc["c"]["ar100"], 0.5, delta=TOL)
        # d alone is small and medium
        self.assertAlmostEqual(got["map_small"], 1.0, delta=TOL)
        self.assertAlmostEqual(got["map_medium"], 1.0, delta=TOL)

    def test_count_threshold_is_inclusive(self):
        anns = [box(1, 10, 0, 0, 50, 50, id=1)]
        res = [box(1, 10, 0, 0, 50, 50, 0.7), box(1, 10, 100, 0, 50, 50, 0.69)]
        got, _ = self.check_against_reference(self.gt2(anns, 1), res, 0.7)
        self.assertEqual(got["count_exact"], 1.0)
        self.assertEqual(got["count_threshold"], 0.7)

    # ---- the randomized set ----

    def test_random_set_matches_reference(self):
        gt, res = random_set()
        self.assertGreater(len(res), 1000)
        got, worst = self.check_against_reference(gt, res)
        print("\n  random set: %d images, %d gt, %d detections: max |autocv - reference| = %.3g"
              % (len(gt["images"]), len(gt["annotations"]), len(res), worst), file=sys.stderr)
        # the set exercises what it is meant to: every figure is defined and non-trivial
        for k in SUMMARY_KEYS:
            self.assertTrue(0.05 < got[k] < 0.99, (k, got[k]))
        names = [c["name"] for c in got["per_class"]]
        self.assertIsNone(got["per_class"][names.index("part99")]["ap"])
        self.assertEqual(got["per_class"][names.index("part50")]["ap"], 0.0)
        got2, worst2 = self.check_against_reference(gt, res, 0.3)
        self.assertLessEqual(worst2, TOL)

    def test_text_report(self):
        gt, res = random_set(seed=3, n_images=40)
        rc, out, err = run("eval-detections", "--gt", self.write(gt), "--pred", self.write(res))
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        ref = coco_reference(gt, res)
        self.assertEqual(lines[0], " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = %.3f"
                         % ref["map50_95"])
        self.assertEqual(lines[11], " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = %.3f"
                         % ref["ar_large"])
        self.assertIn("part99", out)
        self.assertIn("counting (score >= 0.5)", out)

    # ---- bad input ----

    def bad(self, gt, res, *want, code=1):
        gp = gt if isinstance(gt, str) else self.write(gt)
        pp = res if isinstance(res, str) else self.write(res)
        rc, out, err = run("eval-detections", "--gt", gp, "--pred", pp, "--json")
        self.assertEqual(rc, code, err)
        for w in want:
            self.assertIn(w, err)
        return err

    def test_bad_input(self):
        gt = self.gt2([box(1, 10, 0, 0, 5, 5, id=1)])
        ok = [box(1, 10, 0, 0, 5, 5, 0.5)]
        gp = self.write(gt)
        self.bad(gp, [ok[0], box(7, 10, 0, 0, 5, 5, 0.5)], "entry [1]", "image_id 7")
        self.bad(gp, [box(1, 11, 0, 0, 5, 5, 0.5)], "entry [0]", "category_id 11")
        self.bad(gp, [ok[0], box(1, 10, 0, 0, 5, 5)], "entry [1]", "score")
        self.bad(gp, [box(1, 10, 0, 0, -5, 5, 0.5)], "entry [0]", "negative")
        self.bad(gp, [{"image_id": 1, "category_id": 10, "bbox": [0, 0, 5], "score": 1}], "entry [0]", "bbox")
        self.bad(gp, {"image_id": 1}, "not a COCO results file")
        self.bad(gp, os.path.join(self.tmp, "missing.json"), "missing.json")
        broken = os.path.join(self.tmp, "broken.json")
        with open(broken, "w") as f:
            f.write('[\n{"image_id": 1,\n')
        self.bad(gp, broken, "broken.json: line 3")
        self.bad(self.gt2([box(5, 10, 0, 0, 5, 5, id=1)]), ok, "annotations[0]", "image_id 5")
        self.bad(dict(gt, images=[{"id": 1}, {"id": 1}]), ok, "images[1]", "id 1 repeats images[0]")
        self.bad(dict(gt, categories=[]), ok, "categories", "empty")
        rc, out, err = run("eval-detections", "--gt", gp, "--pred", self.write(ok), "--iou-type", "segm")
        self.assertEqual(rc, 2)
        self.assertIn("--iou-type segm", err)
        rc, out, err = run("eval-detections", "--gt", gp)
        self.assertEqual(rc, 2)
        self.assertIn("--pred", err)


if __name__ == "__main__":
    unittest.main()
