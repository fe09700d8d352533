"""Metric speed and memory, printed as figures and ratios measured in the same run (the machine is shared: noisy).

1. AUPRO on an MVTec-category-size test set (83 maps of 256x256; MVTec AD bottle masks from ../shared/data when present,
   else synthetic blobs; smoothed random maps) against the classic 200-threshold per-region `compute_pro` of the RD4AD
   and DAF official code (rewritten below without pandas / skimage, which crash or are absent here), and the pixel
   AUROC + AP against scikit-learn.
2. All metrics (`evaluate`) on a full 15-category-size test set: 1725 maps of 256x256 (467 good), random data, torch
   tensors (N,1,H,W) as the Detector passes them; time and peak memory (ru_maxrss) in a fresh subprocess.

usage: .venv/bin/python bench/metrics.py            (both parts)
       .venv/bin/python bench/metrics.py --full     (part 2 only, prints one JSON line; used by part 1's subprocess)
"""
import json, os, resource, statistics, subprocess, sys, time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BOTTLE = ROOT.parent / 'shared' / 'data' / 'mvtec_ad' / 'bottle'


# ------------------------------------------------------------------ the classic reference (RD4AD test.py / DAF calc_pro.py)
def _regionprops_coords(mask):
    "skimage.measure.regionprops(measure.label(mask)) -> each region's .coords (8-connected, like skimage's default)."
    lab, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    out = []
    for r, sl in enumerate(ndimage.find_objects(lab), 1):
        c = np.argwhere(lab[sl] == r); c[:, 0] += sl[0].start; c[:, 1] += sl[1].start
        out.append(c)
    return out


def classic_compute_pro(masks, amaps, num_th=200):
    "The official compute_pro line for line; pandas DataFrame.append replaced by a list of rows (same numbers)."
    from sklearn.metrics import auc
    from statistics import mean
    rows = []
    binary_amaps = np.zeros_like(amaps, dtype=bool)
    min_th, max_th = amaps.min(), amaps.max()
    delta = (max_th - min_th) / num_th
    for th in np.arange(min_th, max_th, delta):
        binary_amaps[amaps <= th] = 0
        binary_amaps[amaps > th] = 1
        pros = []
        for binary_amap, mask in zip(binary_amaps, masks):
            for coords in _regionprops_coords(mask):               # labelled again at every threshold, as upstream
                tp_pixels = binary_amap[coords[:, 0], coords[:, 1]].sum()
                pros.append(tp_pixels / len(coords))
        inverse_masks = 1 - masks
        fp_pixels = np.logical_and(inverse_masks, binary_amaps).sum()
        fpr = fp_pixels / inverse_masks.sum()
        rows.append((mean(pros), fpr, th))
    pro, fpr, _ = map(np.array, zip(*rows))
    keep = fpr < 0.3
    fpr = fpr[keep] / fpr[keep].max()                              # "normalise" by the largest kept FPR
    return auc(fpr, pro[keep])


# ------------------------------------------------------------------ data
def bottle_masks(size=256):
    "83 masks (20 good, 63 defective) at size x size: MVTec bottle ground truth if present, else synthetic blobs."
    if (BOTTLE / 'ground_truth').is_dir():
        from daf_lite.core import load_mask
        files = sorted((BOTTLE / 'ground_truth').glob('*/*.png'))
        bad = [load_mask(f, size=size)[0].numpy() > 0 for f in files]
        n_good = len(list((BOTTLE / 'test' / 'good').glob('*.png')))
        return np.stack([np.zeros((size, size), bool)] * n_good + bad), 'MVTec AD bottle ground truth'
    rng = np.random.default_rng(0)
    noise = ndimage.gaussian_filter(rng.normal(size=(63, size, size)), (0, 8, 8))
    bad = noise > np.quantile(noise, 0.985, axis=(1, 2), keepdims=True)
    return np.concatenate([np.zeros((20, size, size), bool), bad]), 'synthetic blobs (bottle data not found)'


def smooth_maps(masks, seed=0):
    "Smoothed random maps with a defect bump of random strength per image (so AUPRO is neither 0 nor 1)."
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.random(masks.shape, dtype=np.float32), (0, 4, 4))
    bump = ndimage.gaussian_filter(masks.astype(np.float32), (0, 4, 4))
    return (noise + rng.uniform(0, 0.1, (len(masks), 1, 1)).astype(np.float32) * bump).astype(np.float32)


def timed(f, *a, repeat=1, **kw):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter(); r = f(*a, **kw); ts.append(time.perf_counter() - t0)
    return r, statistics.median(ts)


def rss_mb():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'): return int(line.split()[1]) / 1024


# ------------------------------------------------------------------ part 2 (runs in its own process)
def full_set():
    import torch
    from daf_lite.metrics import evaluate
    torch.set_num_threads(2)
    base, _ = bottle_masks()
    bad_masks = base[base.reshape(len(base), -1).any(1)]
    n, n_good, size = 1725, 467, 256
    rng = np.random.default_rng(1)
    masks = torch.zeros(n, 1, size, size)
    for i in range(n_good, n):                                     # real defect shapes, shifted and flipped
        m = np.roll(bad_masks[i % len(bad_masks)], tuple(rng.integers(-40, 40, 2)), axis=(0, 1))
        masks[i, 0] = torch.from_numpy(np.ascontiguousarray(m[::rng.choice([-1, 1])]))
    maps = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(0))
    strength = torch.rand(n, generator=torch.Generator().manual_seed(1)) * 0.5
    for i, k in enumerate(strength): maps[i].add_(masks[i], alpha=float(k))    # no full-size temporaries
    scores = maps.flatten(1).max(1).values
    labels = (masks.flatten(1).amax(1) > 0).long()
    del m
    defects = ['good'] * n_good + [f'cat{i // 84}_d{i % 5}' for i in range(n - n_good)]    # 15 x 5 defect types
    before = rss_mb()
    res, secs = timed(evaluate, maps, scores, masks, labels)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res_d, secs_d = timed(evaluate, maps, scores, masks, labels, defects)
    peak_d = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import tracemalloc                                             # numpy reports its buffers to tracemalloc
    tracemalloc.start(); evaluate(maps, scores, masks, labels); traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    print(json.dumps(dict(n=n, pixels=int(maps.numel()), defect_pixels=int(masks.sum()), secs=secs, secs_defects=secs_d,
                          n_defects=len(res_d['per_defect']), rss_inputs_mb=before, peak_mb=peak, peak_defects_mb=peak_d, traced_mb=traced,
                          pixel_AUPRO=res['pixel_AUPRO'], pixel_AUROC=res['pixel_AUROC'])))


# ------------------------------------------------------------------ part 1
def category_set():
    from sklearn import metrics as skm
    from daf_lite.metrics import aupro, evaluate, pixel_ap, pixel_auroc
    masks, source = bottle_masks()
    maps = smooth_maps(masks)
    labels = masks.reshape(len(masks), -1).any(1)
    print(f'1. category-size set: {len(masks)} maps of 256x256 ({int((~labels).sum())} good), masks: {source}, '
          f'{int(sum(ndimage.label(m, np.ones((3, 3)))[1] for m in masks))} regions, {masks.mean():.2%} defect pixels')
    ours, t_ours = timed(aupro, maps, masks, repeat=5)
    _, t_eval = timed(evaluate, maps, maps.reshape(len(maps), -1).max(1), masks, labels, repeat=3)
    classic, t_classic = timed(classic_compute_pro, masks.astype(int), maps)
    per_image = [classic_compute_pro(masks[i:i + 1].astype(int), maps[i:i + 1]) for i in np.flatnonzero(labels)]
    print(f'   AUPRO exact (daf_lite)              {ours:.4f}  in {t_ours:.3f} s (median of 5)')
    print(f'   AUPRO classic 200 thresholds (DAF)  {classic:.4f}  in {t_classic:.2f} s  -> daf_lite is '
          f'{t_classic / t_ours:.0f}x faster')
    print(f'   AUPRO RD4AD convention (per image)  {np.mean(per_image):.4f}  (mean of {len(per_image)} per-image AUPROs)')
    print(f'   evaluate(): all 7 metrics            in {t_eval:.3f} s (median of 3)')
    y, s = masks.ravel(), maps.ravel()
    (a, b), t_sk = timed(lambda: (skm.roc_auc_score(y, s), skm.average_precision_score(y, s)))
    (c, d), t_px = timed(lambda: (pixel_auroc(maps, masks), pixel_ap(maps, masks)))
    print(f'   pixel AUROC + AP: sklearn {t_sk:.2f} s, daf_lite {t_px:.2f} s -> {t_sk / t_px:.1f}x; '
          f'|difference| {max(abs(a - c), abs(b - d)):.1e}')


if __name__ == '__main__':
    if '--full' in sys.argv: full_set(); sys.exit()
    print(f'numpy {np.__version__}, {os.cpu_count()} cores (shared with other jobs: timings are noisy)')
    category_set()
    env = {**os.environ, 'OMP_NUM_THREADS': '2'}
    out = subprocess.run([sys.executable, __file__, '--full'], capture_output=True, text=True, env=env)
    if out.returncode: print(out.stderr); sys.exit(1)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"2. full-size set: {r['n']} maps of 256x256 = {r['pixels'] / 1e6:.0f}M pixels ({r['defect_pixels'] / 1e6:.1f}M defect), "
          f"torch float32 (N,1,H,W)")
    print(f"   evaluate(), all 7 metrics:               {r['secs']:.1f} s (target < 30 s)")
    print(f"   evaluate() + per-defect ({r['n_defects']} types):     {r['secs_defects']:.1f} s")
    print(f"   peak RSS {r['peak_mb'] / 1024:.2f} GB (target < 4 GB), of which inputs + torch {r['rss_inputs_mb'] / 1024:.2f} GB; "
          f"metrics' own peak {(r['peak_mb'] - r['rss_inputs_mb']) / 1024:.2f} GB; with per-defect {r['peak_defects_mb'] / 1024:.2f} GB")
    print(f"   arrays allocated by evaluate() at its peak (tracemalloc): {r['traced_mb'] / 1024:.2f} GB "
          f"(the maps alone are {r['pixels'] * 4 / 2**30:.2f} GB)")
