"""Explorer redraw time and report time, on a bottle-size test set (83 images at 256 px), after predictions.

1. Slider moves: an `Explorer` over 83 images of 256x256 (MVTec AD bottle from ../shared/data when present, else the
   toy tile test set at 256 px) with predictions that have 5 cues; the threshold slider, alpha slider, cue, scale and
   image are changed headless (as a browser would) and each change is timed end to end: widget callback, recolouring,
   artist updates, the Agg draw and the PNG handed to the image widget. The model is never called.
2. `save_report` on the same data and predictions (metrics.json, curves, histogram, 2 case grids, 16 case overlays).

Predictions are synthetic (smoothed noise plus the masks), so no training is needed: the timings do not depend on
the method. The machine is shared: run it twice, compare medians; the report's CPU time (process time) is what an
idle machine would take.

usage: .venv/bin/python bench/explore.py [--moves 40]
"""
import argparse, statistics, sys, tempfile, time, warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BOTTLE = ROOT.parent / 'shared' / 'data' / 'mvtec_ad'


def dataset():
    from daf_lite.data import MVTecDataset, toy_root
    if (BOTTLE / 'bottle').is_dir(): return MVTecDataset(BOTTLE, 'bottle', split='test', image_size=256), 'MVTec AD bottle'
    return MVTecDataset(toy_root(), 'tile', split='test', image_size=256), 'toy tile (no ../shared/data)'


def fake_prediction(ds, seed=0):
    "Maps = smoothed noise + 0.5 * mask, with 5 cues, like a DAF prediction."
    from daf_lite.core import Prediction
    from daf_lite.discrepancy import gaussian_blur
    g = torch.Generator().manual_seed(seed)
    masks = torch.stack([ds[i]['mask'] for i in range(len(ds))])
    noise = gaussian_blur(torch.rand(len(ds), 1, 256, 256, generator=g), 4.0)
    maps = noise + 0.5 * gaussian_blur(masks, 2.0)
    cues = {f'layer{k}': maps * k for k in (1, 2, 3)}
    cues.update(fused=maps * 6, segmentation=gaussian_blur(masks, 1.0))
    return Prediction(maps, maps.flatten(1).amax(1), cues=cues)


def timed(ex, change, n):
    "Median and 90th percentile (ms) of `n` calls of change(k), each one widget change and its redraw."
    ts = []
    for k in range(n):
        t0 = time.perf_counter(); change(k); ts.append(time.perf_counter() - t0)
    ts.sort()
    return statistics.median(ts) * 1e3, ts[int(0.9 * (len(ts) - 1))] * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--moves', type=int, default=40)
    a = ap.parse_args()
    warnings.simplefilter('ignore')
    from daf_lite.explore import Explorer, save_report
    ds, name = dataset()
    t0 = time.perf_counter(); pred = fake_prediction(ds); t_pred = time.perf_counter() - t0
    print(f'data: {name}, {len(ds)} images at 256x256, torch threads {torch.get_num_threads()}; '
          f'synthetic predictions in {t_pred:.1f} s')
    t0 = time.perf_counter()
    ex = Explorer(None, ds, prediction=pred, threshold=0.6, map_scale=(0.45, 0.6))
    print(f'Explorer built (first image read, figure drawn) in {(time.perf_counter() - t0) * 1e3:.0f} ms')
    w = ex.widgets
    ex.set(image=len(ds) - 1)
    lo, hi = w['threshold'].min, w['threshold'].max
    n = a.moves
    rows = [('threshold slider', lambda k: setattr(w['threshold'], 'value', lo + (hi - lo) * (0.3 + 0.4 * k / n))),
            ('alpha slider', lambda k: setattr(w['alpha'], 'value', 0.2 + 0.6 * (k % 7) / 6)),
            ('scale toggle', lambda k: setattr(w['scale'], 'value', ('image', 'dataset')[k % 2])),
            ('cue', lambda k: setattr(w['cue'], 'value', list(ex.maps)[k % len(ex.maps)])),
            ('image, cached', lambda k: setattr(w['image'], 'value', (len(ds) - 1, len(ds) - 2)[k % 2])),
            ('image, first view', lambda k: setattr(w['image'], 'value', k % len(ds)))]
    for label, change in rows:
        med, p90 = timed(ex, change, n if label != 'image, first view' else min(n, len(ds) - 2))
        print(f'  {label:>18}: median {med:6.1f} ms, p90 {p90:6.1f} ms per change')
    # where a threshold move's time goes
    ex.set(image=len(ds) - 1, cue='map', scale='dataset')
    from daf_lite.explore import overlay, confusion_overlay, _jpeg
    it, m = ex.item(len(ds) - 1), ex.cue_map('map', len(ds) - 1)
    parts = {'overlay': lambda: overlay(it['image'], m, it['mask'], 0.5, 'jet', 0.45, 0.6, 0.55),
             'binary panel': lambda: confusion_overlay(it['image'], m >= 0.55, it['mask']),
             'one JPEG': lambda: _jpeg(ex.images['overlay'])}
    for k, f in parts.items():
        ts = []
        for _ in range(n):
            t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
        print(f'  of which {k}: median {statistics.median(ts) * 1e3:.1f} ms')
    for run in ('first (imports pyplot)', 'second'):
        with tempfile.TemporaryDirectory() as d:
            t0, c0 = time.perf_counter(), time.process_time()
            paths = save_report(None, ds, d, prediction=pred)
            t, c = time.perf_counter() - t0, time.process_time() - c0
            size = sum(p.stat().st_size for p in Path(d).rglob('*') if p.is_file())
        print(f'save_report, {run} call: {len(ds)} images, {len(paths["cases"]) + 5} files ({size / 1e6:.1f} MB) '
              f'in {t:.1f} s wall, {c:.1f} s CPU')

if __name__ == '__main__':
    main()
