"""What pre-training buys: the training-free PaDiM and a trained RD4AD on a pre-trained and on random teachers.

usage: python bench/teacher_quality.py [--steps 300] [--workers 2] [--data toy,bottle]

Teachers: EfficientNet-Lite0 with its packaged ImageNet weights (the default teacher), the same network randomly
initialised, and a random resnet18 (what every figure of this package came from before the pre-trained teacher).
Methods: PaDiM (`tiny` preset, 100 random channels) and RD4AD (`tiny` preset, `--steps` optimiser steps of batch 8),
each on the toy *tile* and *washer* (128 px, the bundled test split) and, where ../shared/data has it, MVTec AD
*bottle* at 256 px. Seed 0 for every run (the random teachers are the seed-0 draws), one thread per process,
`--workers` processes at a time. Prints image AUROC, pixel AUROC and AUPRO per run and the training seconds.
"""
import argparse, concurrent.futures as cf, multiprocessing as mp, sys, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BOTTLE = ROOT.parent / 'shared' / 'data' / 'mvtec_ad'
TEACHERS = {'Lite0, ImageNet': ('efficientnet_lite0', 'auto'), 'Lite0, random': ('efficientnet_lite0', 'random'),
            'resnet18, random': ('resnet18', 'random')}


def run(teacher: str, method: str, root: str, category: str, size: int, steps: int) -> dict:
    "One (teacher, method, category) cell, one thread: metrics and training seconds."
    import torch
    warnings.simplefilter('ignore')
    torch.set_num_threads(1)
    from daf_lite.detector import Detector, open_dataset
    backbone, weights = TEACHERS[teacher]
    opts = dict(steps=steps, epochs=None) if method != 'padim' else {}
    t0 = time.time()
    det = Detector(method, backbone=backbone, weights=weights, image_size=size, seed=0, **opts)
    det.fit(Path(root) / category, progress=False)
    secs = time.time() - t0
    m = det.evaluate(open_dataset(root, category, 'test', size))
    return dict(teacher=teacher, method=method, category=category, seconds=secs,
                **{k: m[k] for k in ('image_AUROC', 'pixel_AUROC', 'pixel_AUPRO')})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--steps', type=int, default=300)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--data', default='toy,bottle')
    a = ap.parse_args()
    from daf_lite.data import toy_root
    cells = []
    if 'toy' in a.data: cells += [(str(toy_root()), c, 128) for c in ('tile', 'washer')]
    if 'bottle' in a.data and (BOTTLE / 'bottle').is_dir(): cells.append((str(BOTTLE), 'bottle', 256))
    jobs = [(t, m, r, c, s, a.steps) for r, c, s in cells for m in ('padim', 'rd4ad') for t in TEACHERS]
    print(f"{len(jobs)} runs; RD4AD {a.steps} steps of batch 8; {a.workers} processes of one thread")
    print(f"{'category':9s}{'method':>7s}  {'teacher':18s}{'image_AUROC':>12s}{'pixel_AUROC':>12s}{'pixel_AUPRO':>12s}{'s':>6s}")
    with cf.ProcessPoolExecutor(a.workers, mp_context=mp.get_context('spawn')) as ex:
        for r in ex.map(run, *zip(*jobs)):
            print(f"{r['category']:9s}{r['method']:>7s}  {r['teacher']:18s}{r['image_AUROC']:12.3f}{r['pixel_AUROC']:12.3f}"
                  f"{r['pixel_AUPRO']:12.3f}{r['seconds']:6.0f}", flush=True)


if __name__ == '__main__':
    main()
