"""Clean vs perturbed metrics of RD4AD, DAF, AAND and GNL side by side, and DAF's synthesis-strategy spread.

usage: python bench/robustness.py [--data toy|bottle] [--category tile] [--budget 100] [--severities 1,3,5]
                                  [--methods rd4ad,daf,aand,gnl] [--sensitivity draem,simple_shape,...] [--out DIR]

Every method: its `tiny` preset (resnet18, 128 px) with every trained stage set to `--budget` optimiser steps
(`with_budget`), the same teacher weights (the first model's, copied into the others: random on machines without
ImageNet weights), seed 0; trained on the training split (validation: held-out normal images), scored once on the
test split clean and under each perturbation at `--severities`. Writes per-method CSV/PNG, a combined CSV and
comparison PNGs into `--out`, and prints the clean metrics and the mean drops. `--sensitivity` (a comma list of
synthesis strategies, or 'none') also runs DAF with and without its discrepancy cue once per strategy.
Set OMP_NUM_THREADS (e.g. 1 on a shared machine) for stable timings; the seconds printed are wall clock.
"""
import argparse, dataclasses, sys, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
warnings.simplefilter('ignore')

import torch
from daf_lite.core import get_method, seed_everything
from daf_lite.data import MVTecDataset, toy_root
from daf_lite.training import fit
from daf_lite.robustness import (REPORT_METRICS, robustness_report, with_budget, combine_reports, plot_comparison,
                                 synthesis_sensitivity)

BOTTLE = ROOT.parent / 'shared' / 'data' / 'mvtec_ad'


def datasets(data: str, category: str, size: int = 128):
    root = toy_root() if data == 'toy' else BOTTLE
    if data != 'toy' and not (root / category).is_dir(): raise SystemExit(f'{root / category}: not found')
    return root, [MVTecDataset(root, category, s, image_size=size) for s in ('train', 'val', 'test')]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default='toy', choices=('toy', 'bottle'))
    ap.add_argument('--category', default=None)
    ap.add_argument('--budget', type=int, default=100)
    ap.add_argument('--severities', default='1,3,5')
    ap.add_argument('--methods', default='rd4ad,daf,aand,gnl')
    ap.add_argument('--sensitivity', default='none')
    ap.add_argument('--out', default='robustness_out')
    a = ap.parse_args()
    cat = a.category or ('tile' if a.data == 'toy' else 'bottle')
    sev = tuple(int(s) for s in a.severities.split(','))
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    root, (tr, va, te) = datasets(a.data, cat)
    fg = 'auto' if cat in ('washer', 'bottle') else None
    print(f'{a.data}/{cat}: {len(tr)} train, {len(va)} val, {len(te)} test images at 128 px; budget {a.budget} steps '
          f'per trained stage; severities {sev}; torch threads {torch.get_num_threads()}', flush=True)
    reports, teacher = {}, None
    for method in a.methods.split(','):
        spec = get_method(method)
        names = {f.name for f in dataclasses.fields(spec.config_cls)}
        over = {'foreground': fg} if 'foreground' in names and fg else {}
        seed_everything(0)
        model = spec.model_cls(with_budget(spec.config_cls.preset('tiny', **over), a.budget))
        if teacher is None: teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
        else: model.teacher.load_state_dict(teacher)
        t0 = time.perf_counter(); h = fit(model, tr, va, seed=0, progress=False); t1 = time.perf_counter()
        rep = robustness_report(model, te, severities=sev, name=f'{method}_{cat}')
        t2 = time.perf_counter()
        reports[method] = rep
        rep.save(out)
        print(f'{method}: trained {t1 - t0:.0f} s ({h}), scored {len(rep)} conditions {t2 - t1:.0f} s', flush=True)
        print('   clean ' + ', '.join(f'{k} {rep.clean[k]:.3f}' for k in REPORT_METRICS), flush=True)
        print('   mean drop ' + ', '.join(f'{k} {rep.mean_drop(k):+.3f}' for k in REPORT_METRICS), flush=True)
        print(rep.summary(), flush=True)
    combine_reports(reports).to_csv(out / f'robustness_{cat}_all.csv')
    for m in ('image_AUROC', 'pixel_AUROC'):
        plot_comparison(reports, m).savefig(out / f'robustness_{cat}_{m}.png', dpi=110)
    print(f'\n{a.data}/{cat}, budget {a.budget}: clean / mean drop over {len(sev)} severities x 6 perturbations')
    for method, rep in reports.items():
        print(f'{method:>6}: ' + '  '.join(f'{k} {rep.clean[k]:.3f}/{rep.mean_drop(k):+.3f}' for k in REPORT_METRICS))
    if a.sensitivity != 'none':
        strategies = tuple(a.sensitivity.split(','))
        sens = synthesis_sensitivity('daf', te, strategies=strategies, budget=a.budget, progress=True,
                                     variants={'DAF': {}, 'DAF, no cue': dict(use_discrepancy=False)},
                                     **({'foreground': fg} if fg else {}))
        sens.save(out, f'synthesis_sensitivity_{cat}')
        print(sens); print(sens.spread())


if __name__ == '__main__':
    main()
