"""Clean vs perturbed metrics of RD4AD, DAF, AAND and GNL side by side, and DAF's synthesis-strategy spread.

usage: python bench/robustness.py [--data toy|bottle] [--category tile] [--budget 200] [--severities 1,3,5]
                                  [--methods rd4ad,daf,aand,gnl] [--sensitivity draem,simple_shape,...]
                                  [--textures DIR] [--out DIR]

Every method: its `tiny` preset (the pre-trained EfficientNet-Lite0 teacher, 128 px) with every trained stage set to
`--budget` optimiser steps (`with_budget`), the same teacher weights (the first model's, copied into the others),
seed 0; synthetic anomalies from `--textures` (e.g. ../shared/data/dtd_subset/images; default: procedural textures)
and, on objects (washer, bottle), on the object only; trained on the training split (validation: held-out normal images), scored once on the
test split clean and under each perturbation at `--severities`, beside the training-free reference (PaDiM, same
teacher). Writes per-method CSV/PNG, combined and summary CSVs and comparison PNGs into `--out`
(`save_comparison`), and prints the clean metrics and the mean drops. `--sensitivity` (a comma list of
synthesis strategies, or 'none') also runs DAF with and without its discrepancy cue once per strategy.
Set OMP_NUM_THREADS (e.g. 1 on a shared machine) for stable timings; the seconds printed are wall clock.
"""
import argparse, dataclasses, sys, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
warnings.simplefilter('ignore')

import torch
from daf_lite.core import get_method
from daf_lite.data import MVTecDataset, toy_root
from daf_lite.robustness import (REPORT_METRICS, compare_robustness, save_comparison,
                                 synthesis_sensitivity)

BOTTLE = ROOT.parent / 'shared' / 'data' / 'mvtec_ad'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default='toy', choices=('toy', 'bottle'))
    ap.add_argument('--category', default=None)
    ap.add_argument('--budget', type=int, default=200)
    ap.add_argument('--severities', default='1,3,5')
    ap.add_argument('--methods', default='rd4ad,daf,aand,gnl')
    ap.add_argument('--sensitivity', default='none')
    ap.add_argument('--textures', default=None, help='anomaly-source texture folder (default: procedural textures)')
    ap.add_argument('--out', default='robustness_out')
    a = ap.parse_args()
    cat = a.category or ('tile' if a.data == 'toy' else 'bottle')
    sev = tuple(int(s) for s in a.severities.split(','))
    root = toy_root() if a.data == 'toy' else BOTTLE
    if not (root / cat).is_dir(): raise SystemExit(f'{root / cat}: not found')
    test = MVTecDataset(root, cat, 'test', image_size=128)
    methods = tuple(a.methods.split(','))
    takes_fg = any('foreground' in {f.name for f in dataclasses.fields(get_method(m).config_cls)} for m in methods)
    fg = {'foreground': 'auto'} if cat in ('washer', 'bottle') and takes_fg else {}   # objects: defects on the object
    if a.textures and takes_fg: fg['textures'] = str(Path(a.textures).expanduser())
    print(f'{a.data}/{cat}: {len(test.with_split("train"))} train, {len(test.with_split("val"))} val, {len(test)} test '
          f'images at 128 px; budget {a.budget} steps per trained stage; severities {sev}; '
          f'textures {fg.get("textures", "procedural")}; '
          f'torch threads {torch.get_num_threads()}', flush=True)
    reports = compare_robustness(methods, test, budget=a.budget, severities=sev, progress=True, **fg)
    for name, rep in reports.items():
        print(f'\n{name}: trained {rep.train_s:.0f} s, scored {rep.score_s:.0f} s'); print(rep.summary(), flush=True)
    save_comparison(reports, a.out, f'robustness_{cat}')
    print(f'\n{a.data}/{cat}, budget {a.budget}: clean / mean drop over {len(sev)} severities x 6 perturbations')
    for name, rep in reports.items():
        print(f'{name:>32}: ' + '  '.join(f'{k} {rep.clean[k]:.3f}/{rep.mean_drop(k):+.3f}' for k in REPORT_METRICS))
    if a.sensitivity != 'none':
        sens = synthesis_sensitivity('daf', test, strategies=tuple(a.sensitivity.split(',')), budget=a.budget,
                                     progress=True, variants={'DAF': {}, 'DAF, no cue': dict(use_discrepancy=False)}, **fg)
        sens.save(a.out, f'synthesis_sensitivity_{cat}')
        print(sens); print(sens.spread())


if __name__ == '__main__':
    main()
