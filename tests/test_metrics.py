"""Every metric of daf_lite.metrics against an independent slow reference, on many random cases (ties, single-pixel
regions, images without defects, constant maps), plus degenerate inputs and real MVTec bottle masks."""
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn import metrics as skm

from daf_lite.core import DataError, get_device
from daf_lite.metrics import (METRIC_NAMES, MetricWarning, aupro, evaluate, image_ap, image_auroc, image_f1_max,
                              pixel_ap, pixel_auroc, pixel_f1_max, pr_curve, pro_curve, roc_curve)

TOL = 1e-6
EIGHT = np.ones((3, 3), int)      # 8-connectivity, like skimage.measure.label and the MVTec evaluation code


# ---------------------------------------------------------------- slow references, written plainly
def ref_aupro(maps, masks, fpr_limit):
    "Per-threshold loop over regions: one operating point per distinct score, trapezoids, interpolation at the limit."
    regions = []                                          # the scores of each connected component, whole set
    for s, m in zip(maps, masks):
        lab, n = ndimage.label(m, structure=EIGHT)
        for r in range(1, n + 1): regions.append(s[lab == r])
    normal = maps[~masks]
    points = [(0.0, 0.0)]
    for t in sorted(set(maps.ravel().tolist()), reverse=True):
        fpr = np.sum(normal >= t) / normal.size
        pro = np.mean([np.sum(reg >= t) / reg.size for reg in regions])
        points.append((fpr, pro))
    area = 0.0
    for (f0, p0), (f1, p1) in zip(points[:-1], points[1:]):
        if f0 >= fpr_limit: break
        if f1 > fpr_limit:
            p1 = p0 + (p1 - p0) * (fpr_limit - f0) / (f1 - f0); f1 = fpr_limit
        area += (f1 - f0) * (p0 + p1) / 2
    return area / fpr_limit


def ref_f1_max(scores, labels):
    "F1 at every threshold of sklearn's precision-recall curve."
    p, r, t = skm.precision_recall_curve(labels, scores)
    with np.errstate(invalid='ignore', divide='ignore'): f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0)
    return f1[:-1].max()


def f1_at(scores, labels, t):
    pred = scores >= t
    return 2 * np.sum(pred & labels) / (pred.sum() + labels.sum())


# ---------------------------------------------------------------- random cases
def random_case(seed):
    "Small maps and masks with the hard parts: ties, single pixels, defect-free images, constant maps, float32/64."
    rng = np.random.default_rng(seed)
    n, h, w = rng.integers(1, 6), rng.integers(2, 13), rng.integers(2, 13)
    kind = ['blobs', 'speckle', 'mixed'][seed % 3]
    if kind == 'speckle': masks = rng.random((n, h, w)) < rng.choice([0.03, 0.1, 0.3])     # many single-pixel regions
    else:
        noise = ndimage.gaussian_filter(rng.normal(size=(n, h, w)), (0, 1, 1))
        masks = noise > np.quantile(noise, rng.uniform(0.6, 0.95))
        if kind == 'mixed': masks |= rng.random((n, h, w)) < 0.03
    masks[rng.random(n) < 0.3] = False                                                       # images without defects
    style = ['continuous', 'ties', 'coarse', 'constant', 'separable'][(seed // 3) % 5]
    base = rng.random((n, h, w))
    if style == 'continuous': maps = base + rng.uniform(0, 1) * masks
    elif style == 'ties': maps = np.round((base + 0.5 * masks) * 4) / 4                      # a handful of values
    elif style == 'coarse': maps = rng.integers(0, 3, (n, h, w)).astype(float) + masks * rng.integers(0, 2)
    elif style == 'constant': maps = np.full((n, h, w), 0.5)
    else: maps = base * 0.5 + masks                                                           # perfect separation
    if seed % 2: maps = maps.astype(np.float32)
    return maps, masks


CASES = [random_case(s) for s in range(300)]
VALID = [(s, c) for s, c in enumerate(CASES) if c[1].any() and (~c[1]).any()]


def test_cases_cover_the_hard_parts():
    assert len(VALID) > 250
    assert sum(len(np.unique(m)) < m.size / 2 for m, _ in CASES) > 100                       # ties
    singles = sum((np.bincount(ndimage.label(k, EIGHT)[0].ravel())[1:] == 1).any() for _, mk in CASES for k in mk)
    assert singles > 100
    assert sum((~mk.reshape(len(mk), -1).any(1)).any() for _, mk in CASES) > 50               # defect-free images
    assert sum(len(np.unique(m)) == 1 for m, _ in CASES) > 30                                 # constant maps


@pytest.mark.parametrize('fpr_limit', [0.3, 1.0, 0.05, 0.5])
def test_aupro_matches_reference(fpr_limit):
    for seed, (maps, masks) in VALID:
        got, want = aupro(maps, masks, fpr_limit=fpr_limit), ref_aupro(maps, masks, fpr_limit)
        assert abs(got - want) < TOL, (seed, fpr_limit, got, want)


def test_pro_curve_area_and_end():
    for seed, (maps, masks) in VALID[::5]:
        f, r, t = pro_curve(maps, masks, fpr_limit=0.3)
        assert f[-1] == pytest.approx(0.3) and np.all(np.diff(f) >= 0) and np.all(np.diff(r) >= -1e-12), seed
        assert abs(np.trapezoid(r, f) / 0.3 - ref_aupro(maps, masks, 0.3)) < TOL
        f1, r1, _ = pro_curve(maps, masks)
        assert f1[-1] == 1 and r1[-1] == pytest.approx(1)


def test_pixel_metrics_match_sklearn():
    for seed, (maps, masks) in VALID:
        s, y = maps.ravel(), masks.ravel()
        assert abs(pixel_auroc(maps, masks) - skm.roc_auc_score(y, s)) < TOL, seed
        assert abs(pixel_ap(maps, masks) - skm.average_precision_score(y, s)) < TOL, seed
        f1, t = pixel_f1_max(maps, masks)
        assert abs(f1 - ref_f1_max(s, y)) < TOL, seed
        assert abs(f1_at(s, y, t) - f1) < TOL, seed


def test_image_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    for seed in range(300):
        n = int(rng.integers(2, 60))
        y = rng.random(n) < rng.uniform(0.1, 0.9)
        if y.all() or not y.any(): y[0] = not y[0]
        s = rng.random(n) + rng.uniform(0, 1) * y
        if seed % 3 == 0: s = np.round(s * 3) / 3                                             # ties
        if seed % 7 == 0: s = np.zeros(n)                                                    # all tied
        if seed % 2: s = s.astype(np.float32)
        assert abs(image_auroc(s, y) - skm.roc_auc_score(y, s)) < TOL, seed
        assert abs(image_ap(s, y) - skm.average_precision_score(y, s)) < TOL, seed
        f1, t = image_f1_max(torch.tensor(s), torch.tensor(y))
        assert abs(f1 - ref_f1_max(s, y)) < TOL and abs(f1_at(s, y, t) - f1) < TOL, seed


def test_curves_lie_on_sklearn_curves():
    for seed, (maps, masks) in VALID[::3]:
        s, y = maps.ravel(), masks.ravel()
        fpr, tpr, thr = roc_curve(maps, masks)
        sf, st, _ = skm.roc_curve(y, s, drop_intermediate=False)
        assert set(zip(fpr.round(12), tpr.round(12))) <= set(zip(sf.round(12), st.round(12))), seed
        assert abs(np.trapezoid(tpr, fpr) - skm.roc_auc_score(y, s)) < TOL
        for x, t in zip(zip(fpr[1:-1], tpr[1:-1]), thr[1:-1]):                                # each threshold gives its point
            pred = s >= t
            assert np.isclose(x[0], (pred & ~y).sum() / (~y).sum()) and np.isclose(x[1], (pred & y).sum() / y.sum())
        p, r, t = pr_curve(maps, masks)
        sp, sr, stt = skm.precision_recall_curve(y, s)
        assert set(zip(p.round(12), r.round(12))) <= set(zip(sp.round(12), sr.round(12))), seed
        assert np.all(np.diff(t) > 0) and p[-1] == 1 and r[-1] == 0


def test_torch_inputs_any_shape_and_device():
    maps, masks = next(c for _, c in VALID if c[0].dtype == np.float32 and len(c[0]) > 1)
    dev = get_device()
    want = aupro(maps, masks)
    assert aupro(torch.tensor(maps)[:, None].to(dev), torch.tensor(masks)[:, None].float().to(dev)) == want
    assert aupro(torch.tensor(maps).to(dev), torch.tensor(masks).to(dev)) == want
    assert pixel_auroc(torch.tensor(maps).half(), masks) == pytest.approx(pixel_auroc(maps.astype(np.float16), masks))


def test_known_values():
    "Hand-computed answers (also taught in the chapter)."
    s, y = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])
    assert image_auroc(s, y) == 0.75 and image_ap(s, y) == pytest.approx(5 / 6)
    assert image_f1_max(s, y) == (pytest.approx(0.8), 0.35)
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 0, 0, 1], [0, 0, 0, 0, 0]])
    amap = np.array([[0.9, 0.8, 0.75, 0.6, 0.1], [0.3, 0.2, 0.5, 0.4, 0.7], [0.1] * 5])
    assert aupro(amap, mask) == pytest.approx(0.175 / 0.3)
    assert aupro(np.zeros((3, 5)), mask) == pytest.approx(0.15)                                # constant map: alpha / 2
    assert aupro(mask * 1.0, mask) == pytest.approx(1.0)


# ---------------------------------------------------------------- evaluate
def toy(seed=0, n_good=6, n_bad=10, size=24):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_good + n_bad, 1, size, size), bool)
    for i in range(n_good, n_good + n_bad):
        y0, x0 = rng.integers(0, size - 6, 2); masks[i, 0, y0:y0 + rng.integers(1, 7), x0:x0 + rng.integers(1, 7)] = True
    maps = (rng.random(masks.shape) + rng.uniform(0, 1, (len(masks), 1, 1, 1)) * masks).astype(np.float32)
    scores = maps.reshape(len(maps), -1).max(1) + rng.normal(0, 0.05, len(maps))
    labels = masks.reshape(len(masks), -1).any(1).astype(int)
    defects = ['good'] * n_good + [['scratch', 'hole', 'crack'][i % 3] for i in range(n_bad)]
    return maps, scores, masks, labels, defects


def test_evaluate_matches_the_parts_and_per_defect_is_defect_vs_all_good():
    maps, scores, masks, labels, defects = toy()
    res = evaluate(torch.tensor(maps), torch.tensor(scores), torch.tensor(masks).float(), torch.tensor(labels), defects)
    assert tuple(k for k in res if k != 'per_defect') == METRIC_NAMES
    s, y = maps.ravel(), masks.ravel()
    assert abs(res['image_AUROC'] - skm.roc_auc_score(labels, scores)) < TOL
    assert abs(res['image_AP'] - skm.average_precision_score(labels, scores)) < TOL
    assert abs(res['image_F1Max'] - ref_f1_max(scores, labels)) < TOL
    assert abs(res['pixel_AUROC'] - skm.roc_auc_score(y, s)) < TOL
    assert abs(res['pixel_AP'] - skm.average_precision_score(y, s)) < TOL
    assert abs(res['pixel_F1Max'] - ref_f1_max(s, y)) < TOL
    assert abs(res['pixel_AUPRO'] - ref_aupro(maps[:, 0], masks[:, 0], 0.3)) < TOL
    d = np.array(defects)
    assert sorted(res['per_defect']) == ['crack', 'hole', 'scratch']
    for k, r in res['per_defect'].items():
        sub = (d == 'good') | (d == k)
        assert abs(r['image_AUROC'] - skm.roc_auc_score(labels[sub], scores[sub])) < TOL
        assert abs(r['pixel_AP'] - skm.average_precision_score(masks[sub].ravel(), maps[sub].ravel())) < TOL
        assert abs(r['pixel_AUPRO'] - ref_aupro(maps[sub, 0], masks[sub, 0], 0.3)) < TOL
    no_def = evaluate(maps, scores, masks, labels)
    assert 'per_defect' not in no_def and all(no_def[k] == res[k] for k in METRIC_NAMES)


def test_evaluate_defaults_for_scores_and_labels():
    maps, scores, masks, labels, _ = toy(1)
    r = evaluate(maps[:, 0], None, masks[:, 0], None)
    assert r['image_AUROC'] == pytest.approx(skm.roc_auc_score(labels, maps.reshape(len(maps), -1).max(1)))


def test_one_class_is_nan_with_one_warning():
    maps, scores, masks, labels, defects = toy(2)
    good = labels == 0
    for args in [(maps[good], scores[good], masks[good], labels[good]),                      # good images only
                 (maps[~good], scores[~good], masks[~good], labels[~good], np.array(defects)[~good])]:  # defects only
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            r = evaluate(*args)
        assert len(w) == 1 and w[0].category is MetricWarning, [str(x.message) for x in w]
        assert np.isnan(r['image_AUROC']) and np.isnan(r['image_F1Max'])
    with pytest.warns(MetricWarning) as w: assert np.isnan(image_auroc([0.1, 0.2], [1, 1]))
    assert len(w) == 1
    with pytest.warns(MetricWarning): assert np.isnan(aupro(maps[good], masks[good]))
    with pytest.warns(MetricWarning): assert np.isnan(pixel_f1_max(maps[good], masks[good])[0])
    with pytest.warns(MetricWarning): assert np.isnan(evaluate(maps[:0], scores[:0], masks[:0], labels[:0])['pixel_AUPRO'])
    allbad = np.ones((2, 4, 4), bool)                                                        # no normal pixels at all
    with pytest.warns(MetricWarning): assert np.isnan(aupro(np.random.rand(2, 4, 4), allbad))


def test_clear_errors():
    maps, scores, masks, labels, _ = toy(3)
    with pytest.raises(DataError, match=r'maps has shape \(16, 1, 24, 24\) but masks has shape \(16, 1, 24, 20\)'):
        evaluate(maps, scores, masks[..., :20], labels)
    with pytest.raises(DataError, match=r'maps has shape \(16, 1, 24, 24\) but masks has shape \(15, 1, 24, 24\)'):
        aupro(maps, masks[1:])
    with pytest.raises(DataError, match='binary'): pixel_auroc(maps, masks * 255)
    with pytest.raises(DataError, match='binary'): aupro(maps, masks * 0.5)
    bad = maps.copy(); bad[3, 0, 2, 2] = np.nan
    with pytest.raises(DataError, match='NaN or infinite'): evaluate(bad, scores, masks, labels)
    bad[3, 0, 2, 2] = np.inf
    with pytest.raises(DataError, match='NaN or infinite'): aupro(bad, masks)
    with pytest.raises(DataError, match='scores'): image_auroc(np.array([np.nan, 1.]), [0, 1])
    with pytest.raises(DataError, match='scores has 15 entries'): evaluate(maps, scores[1:], masks, labels)
    with pytest.raises(DataError, match='labels'): evaluate(maps, scores, masks, labels * 2)
    with pytest.raises(DataError, match='labelled normal'): evaluate(maps, scores, masks, np.zeros(16))
    with pytest.raises(DataError, match='defects has 2 entries'): evaluate(maps, scores, masks, labels, ['a', 'b'])
    with pytest.raises(DataError, match=r'expected shape \(N,1,H,W\)'): aupro(maps[..., None], masks[..., None])
    with pytest.raises(ValueError, match='fpr_limit'): aupro(maps, masks, fpr_limit=1.5)


# ---------------------------------------------------------------- real masks
def test_real_bottle_masks_against_reference(shared_data):
    "MVTec bottle ground truth (irregular regions of every size) with quantised random maps (many ties)."
    from daf_lite.core import load_mask
    files = sorted((shared_data / 'mvtec_ad' / 'bottle' / 'ground_truth').glob('*/*.png'))[::6]
    masks = np.stack([load_mask(f, size=64)[0].numpy() > 0 for f in files] + [np.zeros((64, 64), bool)] * 4)
    rng = np.random.default_rng(0)
    maps = np.round(ndimage.gaussian_filter(rng.random(masks.shape), (0, 2, 2)) * 40 + 3 * masks) / 8
    assert abs(aupro(maps, masks) - ref_aupro(maps, masks, 0.3)) < TOL
    assert abs(pixel_auroc(maps, masks) - skm.roc_auc_score(masks.ravel(), maps.ravel())) < TOL
