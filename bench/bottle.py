"""Every method on real data: MVTec AD *bottle* (../shared/data) at 256 px, the pre-trained EfficientNet-Lite0 teacher,
each within a training budget of ten minutes on a 2-core CPU, beside the training-free PaDiM reference.

usage: python bench/bottle.py [--methods padim,rd4ad,daf,aand,gnl] [--workers 2] [--scale 1.0] [--seed 0]

Each method starts from its `tiny` preset at 256 px with the recipe in RECIPES (optimiser steps per stage, batch,
learning rate; DTD textures from ../shared/data/dtd_subset and foreground-only synthesis for the methods that
synthesise anomalies, as the papers do on object categories); `--scale` multiplies every stage's steps (2.0: twice
the budget). Runs are spread over `--workers` processes of one thread each, so two runs share the two cores; the
seconds printed are each run's training wall clock on one core. Model selection never looks at the test images:
each run trains its budget and is scored once on the test split. Prints image AUROC, pixel AUROC, AUPRO, image and
pixel F1-max and the training seconds per method.
"""
import argparse, concurrent.futures as cf, multiprocessing as mp, sys, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / 'shared' / 'data'
DATA, TEXTURES = SHARED / 'mvtec_ad', SHARED / 'dtd_subset' / 'images'
METRICS = ('image_AUROC', 'pixel_AUROC', 'pixel_AUPRO', 'image_F1Max', 'pixel_F1Max')
SYNTH = dict(textures=str(TEXTURES), foreground='auto')      # the papers' data recipe on an object category
RECIPES = {                                                   # stage lengths in optimiser steps, at 256 px
    'padim': {},
    'rd4ad': dict(steps=600, batch_size=8),
    'daf': dict(steps=800, batch_size=4, **SYNTH),
    'aand': dict(steps_stage1=200, steps_stage2=500, batch_size=8, **SYNTH),
    'gnl': dict(steps=200, steps_seg=100, batch_size=8, seg_batch_size=8, **SYNTH),
}


def recipe(method: str, scale: float = 1.0) -> dict:
    "The config overrides of `method`'s bottle run, every stage's steps times `scale`."
    r = dict(RECIPES[method])
    for k in [k for k in r if k == 'steps' or k.startswith('steps_')]:
        r[k] = max(1, round(r[k] * scale))
        r['epochs' + k[5:]] = None
    return r


def run(method: str, scale: float = 1.0, seed: int = 0, threads: int = 1) -> dict:
    "Train and score one method on bottle (one process, `threads` threads): metrics, seconds, the recipe."
    import torch
    warnings.simplefilter('ignore')
    torch.set_num_threads(threads)
    from daf_lite.detector import Detector, open_dataset
    t0 = time.time()
    det = Detector(method, image_size=256, seed=seed, **recipe(method, scale))
    det.fit(DATA / 'bottle', progress=False, seed=seed)
    secs = time.time() - t0
    m = det.evaluate(open_dataset(DATA, 'bottle', 'test', 256))
    return dict(method=method, seconds=secs, recipe=recipe(method, scale), weights=det.model.teacher.weights_source,
                **{k: float(m[k]) for k in METRICS})


def run_all(methods, workers: int = 2, scale: float = 1.0, seed: int = 0, echo=print) -> list[dict]:
    "Every method in `methods`, `workers` one-thread processes at a time; rows in the order given."
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context('spawn')) as ex:
        futs = [ex.submit(run, m, scale, seed) for m in methods]
        rows = []
        for f in futs:
            r = f.result(); rows.append(r)
            echo(f"{r['method']:>6s}  " + '  '.join(f'{r[k]:.3f}' for k in METRICS) + f"  {r['seconds']:6.0f}  {r['recipe']}")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--methods', default='padim,rd4ad,daf,aand,gnl')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--scale', type=float, default=1.0)
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    if not (DATA / 'bottle').is_dir(): raise SystemExit(f'{DATA / "bottle"}: not found (the shared real data)')
    print(f"MVTec AD bottle, 256 px, pre-trained EfficientNet-Lite0 teacher, {a.workers} processes of one thread, "
          f"steps x {a.scale}")
    print(f"{'method':>6s}  " + '  '.join(k for k in METRICS) + '  train_s  recipe', flush=True)
    run_all(a.methods.split(','), a.workers, a.scale, a.seed)


if __name__ == '__main__':
    main()
