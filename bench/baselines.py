"""Training-free baselines (PaDiM, PatchCore) vs the distillation methods, at equal teacher weights.

Measures, on one MVTec-style category (default: ../shared/data/mvtec_ad/bottle, all 209 training and 83 test images
at 256 px; the bundled toy 'tile' when that folder is absent):
  * fit and evaluation time of each method, as seconds and as multiples of one pass of the methods' frozen teacher
    over the same images measured in the same run (timings on a shared machine are noisy; the ratios travel better),
    beside one pass of a resnet18 for scale (speed does not depend on the weights);
  * the size of what each baseline stores and the process's peak memory (each method runs in its own process);
  * image / pixel AUROC, AUPRO (daf_lite.metrics.evaluate) and, for distillation methods trained for several step
    budgets, the smallest budget at which they overtake the Gaussian baseline.

    python bench/baselines.py                 # padim + patchcore, tiny presets: the packaged ImageNet EfficientNet-Lite0
    python bench/baselines.py --methods padim,rd4ad,daf --steps 100,300,1000
    python bench/baselines.py --weights random                       # the same network, randomly initialised
    python bench/baselines.py --set backbone=resnet18 --weights random   # a random resnet18 (no weights on disk)
    python bench/baselines.py --methods patchcore --set coreset_ratio=0.01   # PatchCore-1%

Every row records its teacher (backbone and where the weights came from: 'random' when none were found).

Results are printed and written as JSON to bench/out/baselines-<date>.json.
"""
from __future__ import annotations
import argparse, dataclasses, datetime, json, math, os, platform, resource, subprocess, sys, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / 'shared' / 'data' / 'mvtec_ad' / 'bottle'


def _parse_value(v: str):
    for cast in (int, float):
        try: return cast(v)
        except ValueError: pass
    return {'none': None, 'true': True, 'false': False}.get(v.lower(), v)


def _loader(ds, batch_size):
    from torch.utils.data import DataLoader
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)


def _datasets(args):
    from daf_lite.data import MVTecDataset
    root = Path(args.data).expanduser()
    train = MVTecDataset(root.parent, root.name, split='train', image_size=args.image_size, val_fraction=0)
    test = MVTecDataset(root.parent, root.name, split='test', image_size=args.image_size)
    return train, test


def _teacher_pass(args, train, test, backbone: str) -> float:
    "Seconds for one frozen `backbone` (layers 1-3) pass over train + test, data loading included."
    import torch
    from daf_lite.teacher import FeatureExtractor
    t = FeatureExtractor(backbone, (1, 2, 3), weights='random')      # weights do not change the speed
    t0 = time.perf_counter()
    with torch.no_grad():
        for ds in (train, test):
            for b in _loader(ds, args.batch_size): t(b['image'])
    return time.perf_counter() - t0


def _budget(config_cls, steps: int, batch_size: int, n_train: int) -> dict:
    "Config overrides that train for about `steps` optimiser steps (a `steps` field, else whole `epochs`)."
    names = {f.name for f in dataclasses.fields(config_cls)}
    if 'steps' in names: return {'steps': steps}
    if 'epochs' in names: return {'epochs': max(1, math.ceil(steps * batch_size / n_train))}
    raise SystemExit(f"{config_cls.__name__} has neither a 'steps' nor an 'epochs' field; pass --set <field>=<n>.")


def run_one(args) -> dict:
    "Fit and evaluate one method (in this process); returns timings, sizes and metrics."
    import torch
    torch.set_num_threads(args.threads)
    from daf_lite.core import get_method, seed_everything
    from daf_lite.metrics import evaluate
    spec = get_method(args.method)
    train, test = _datasets(args)
    over = dict(image_size=args.image_size, weights=args.weights, **args.overrides)
    seed_everything(args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        cfg = spec.config_cls.preset(args.preset, **over)
        if args.steps_one is not None:
            cfg = cfg.replace(**_budget(spec.config_cls, args.steps_one, getattr(cfg, 'batch_size', 8), len(train)))
        model = spec.model_cls(cfg)
    t0 = time.perf_counter()
    try:
        from daf_lite.training import fit
        fit(model, train, None, device='cpu', seed=args.seed, progress=False)
    except ImportError:                        # before the training chapter exists: the protocol by hand
        for st in model.stages(): st.fit_pass(_loader(train, st.batch_size))
    t_fit = time.perf_counter() - t0
    model.eval()
    maps, scores, masks, labels = [], [], [], []
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in _loader(test, args.batch_size):
            o = model(b['image'])
            maps.append(o['maps']); scores.append(o['scores']); masks.append(b['mask']); labels.append(b['label'])
    t_pred = time.perf_counter() - t0
    t0 = time.perf_counter()
    m = evaluate(torch.cat(maps), torch.cat(scores), torch.cat(masks), torch.cat(labels))
    t_metrics = time.perf_counter() - t0
    sizes = {n: b.numel() * b.element_size() for n, b in model.named_buffers() if n in getattr(model, 'fitted_buffers', ())}
    shapes = {n: list(getattr(model, n).shape) for n in sizes}
    teacher = getattr(model, 'teacher', None)
    return dict(method=args.method, preset=args.preset, steps=args.steps_one, config=cfg.to_dict(),
                teacher=dict(backbone=getattr(cfg, 'backbone', None),
                             weights_source=getattr(teacher, 'weights_source', None)),
                n_train=len(train), n_test=len(test), fit_s=t_fit, predict_s=t_pred, metrics_s=t_metrics,
                total_s=t_fit + t_pred + t_metrics, stored_bytes=sizes, stored_shapes=shapes,
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                metrics={k: float(v) for k, v in m.items() if isinstance(v, (int, float))})


def _child(args, method, steps=None) -> dict:
    "Run one method in a fresh process so that its peak memory is its own."
    cmd = [sys.executable, __file__, '--_one', method, '--data', str(args.data), '--image-size', str(args.image_size),
           '--weights', args.weights, '--threads', str(args.threads), '--seed', str(args.seed), '--preset', args.preset,
           '--batch-size', str(args.batch_size)] + sum((['--set', s] for s in args.set), [])
    if steps is not None: cmd += ['--_steps', str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'TQDM_DISABLE': '1'})
    if out.returncode:
        print(out.stderr[-3000:], file=sys.stderr)
        return dict(method=method, steps=steps, error=out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'failed')
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default=str(SHARED if SHARED.is_dir() else ROOT / 'data' / 'tile'),
                   help='an MVTec-style category folder (default: shared bottle, else the toy tile)')
    p.add_argument('--methods', default='padim,patchcore', help='comma-separated registered method names')
    p.add_argument('--steps', default='100,300,1000', help='training budgets (optimiser steps) for methods that train')
    p.add_argument('--image-size', type=int, default=256)
    p.add_argument('--weights', default='auto', help="teacher weights for every method: 'auto' (the default: packaged "
                                                     "or on-disk ImageNet weights, else random), 'imagenet', 'random'")
    p.add_argument('--preset', default='tiny', help="method preset; image_size and weights are overridden")
    p.add_argument('--set', action='append', default=[], help='config override key=value for every method (repeatable)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--batch-size', type=int, default=16, help='inference batch size')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=None)
    p.add_argument('--_one', dest='method', help=argparse.SUPPRESS)
    p.add_argument('--_steps', dest='steps_one', type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.overrides = {k: _parse_value(v) for k, v in (s.split('=', 1) for s in args.set)}
    sys.path.insert(0, str(ROOT))
    if args.method:                                       # child process: one method, JSON on the last line
        print(json.dumps(run_one(args))); return

    import torch
    torch.set_num_threads(args.threads)
    from daf_lite.core import get_method
    train, test = _datasets(args)
    names = args.methods.split(',')
    from daf_lite.teacher import DEFAULT_BACKBONE             # the unit: the first method's teacher, for speed
    backbone = (args.overrides.get('backbone')
                or getattr(get_method(names[0]).config_cls.preset(args.preset), 'backbone', DEFAULT_BACKBONE))
    stamp = datetime.datetime.now().strftime('%Y-%m-%d %H:%M')
    print(f"{stamp}  {platform.processor() or platform.machine()}, CPU, {args.threads} threads, torch {torch.__version__}; "
          f"machine shared with other jobs: timings are noisy, compare the ratios")
    print(f"data {args.data}: {len(train)} train, {len(test)} test images at {args.image_size} px; teacher "
          f"{backbone}, weights '{args.weights}'; preset '{args.preset}'; overrides {args.overrides or 'none'}")
    unit = _teacher_pass(args, train, test, backbone)
    ref = {b: _teacher_pass(args, train, test, b) for b in ('resnet18',) if b != backbone}
    print(f"unit: one frozen {backbone} (layers 1-3) pass over train + test = {unit:.1f} s"
          + ''.join(f"; for scale, {b} (layers 1-3): {t:.1f} s ({t / unit:.1f}x)" for b, t in ref.items()) + "\n")
    rows = []
    for name in names:
        free = get_method(name).training_free
        for steps in ([None] if free else [int(s) for s in args.steps.split(',')]):
            r = _child(args, name, steps); rows.append(r)
            if 'error' in r: print(f"{name:10s} steps={steps}: FAILED: {r['error']}"); continue
            m, t = r['metrics'], r['teacher']
            store = ', '.join(f"{k} {tuple(r['stored_shapes'][k])} {v / 2**20:.1f} MB" for k, v in r['stored_bytes'].items())
            print(f"{name:10s} {'' if steps is None else f'steps={steps:<5d}'} fit {r['fit_s']:6.1f} s ({r['fit_s'] / unit:4.1f}x)  "
                  f"predict {r['predict_s']:5.1f} s  metrics {r['metrics_s']:4.1f} s  total {r['total_s']:6.1f} s "
                  f"({r['total_s'] / unit:4.1f}x)  peak RSS {r['peak_rss_mb']:.0f} MB"
                  f"\n{'':10s} image_AUROC {m['image_AUROC']:.3f}  pixel_AUROC {m['pixel_AUROC']:.3f}  "
                  f"pixel_AUPRO {m.get('pixel_AUPRO', float('nan')):.3f}  teacher {t['backbone']} ({t['weights_source']})"
                  + (f"\n{'':10s} stored: {store}" if store else ''),
                  flush=True)
    base = next((r for r in rows if r.get('method') == 'padim' and 'error' not in r), None)
    if base:
        for name in {r['method'] for r in rows if r.get('steps') is not None}:
            runs = sorted((r for r in rows if r['method'] == name and 'error' not in r), key=lambda r: r['steps'])
            for key in ('image_AUROC', 'pixel_AUROC'):
                over = next((r['steps'] for r in runs if r['metrics'][key] >= base['metrics'][key]), None)
                print(f"{name}: {key} overtakes PaDiM ({base['metrics'][key]:.3f}) "
                      + (f"at {over} steps" if over else f"not within {runs[-1]['steps'] if runs else 0} steps"))
    out = Path(args.out) if args.out else ROOT / 'bench' / 'out' / f"baselines-{datetime.date.today()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(date=stamp, threads=args.threads, unit_teacher=backbone, unit_teacher_pass_s=unit,
                                   reference_teacher_pass_s=ref, data=str(args.data), weights=args.weights, rows=rows),
                              indent=1))
    print(f"\nwrote {out}")


if __name__ == '__main__':
    main()
