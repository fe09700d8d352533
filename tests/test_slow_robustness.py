"""Robustness on real data (MVTec AD bottle): RD4AD, DAF, AAND and GNL clean vs perturbed at an equal budget and identical
teacher weights; DAF's synthesis-strategy spread with and without its discrepancy cue. Slow: runs only with
DAF_LITE_SLOW=1 and ../shared/data.

Budget: DAF_LITE_SLOW_STEPS optimiser steps (default 100) for every trained stage (`with_budget`) of each method's
`tiny` preset (resnet18, 128 px); severities 1, 3, 5 of all six perturbations. The same teacher weights (the first
model's — random without ImageNet weights) are copied into every model. `bench/robustness.py --data bottle` runs the
same protocol and writes the CSV/PNG outputs.
"""
import dataclasses, os, time

import pytest
import torch

pytestmark = pytest.mark.slow
SLOW = os.environ.get('DAF_LITE_SLOW') == '1'
STEPS = int(os.environ.get('DAF_LITE_SLOW_STEPS', '100'))


def _bottle(shared_data, split):
    from daf_lite.data import MVTecDataset
    return MVTecDataset(shared_data / 'mvtec_ad', 'bottle', split, image_size=128)


@pytest.mark.skipif(not SLOW, reason='slow real-data check: set DAF_LITE_SLOW=1')
def test_robustness_bottle(shared_data, tmp_path):
    from daf_lite.core import get_method, seed_everything
    from daf_lite.training import fit
    from daf_lite.robustness import REPORT_METRICS, robustness_report, with_budget, combine_reports

    train, val, test = (_bottle(shared_data, s) for s in ('train', 'val', 'test'))
    reports, teacher = {}, None
    for method in ('rd4ad', 'daf', 'aand', 'gnl'):
        spec = get_method(method)
        names = {f.name for f in dataclasses.fields(spec.config_cls)}
        seed_everything(0)
        cfg = with_budget(spec.config_cls.preset('tiny', **({'foreground': 'auto'} if 'foreground' in names else {})), STEPS)
        model = spec.model_cls(cfg)
        if teacher is None: teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
        else: model.teacher.load_state_dict(teacher)
        t0 = time.perf_counter()
        fit(model, train, val, seed=0, progress=False)
        reports[method] = rep = robustness_report(model, test, severities=(1, 3, 5), name=method)
        rep.save(tmp_path)
        print(f"{method}: {time.perf_counter() - t0:.0f} s; clean " +
              ', '.join(f'{k} {rep.clean[k]:.3f}' for k in REPORT_METRICS) + '; mean drop ' +
              ', '.join(f'{k} {rep.mean_drop(k):+.3f}' for k in REPORT_METRICS), flush=True)
        print(rep.summary(), flush=True)
    combine_reports(reports).to_csv(tmp_path / 'all.csv')
    for name, rep in reports.items():
        for r in rep:
            assert all(0 <= r[k] <= 1 for k in REPORT_METRICS), (name, r)
            assert all(abs(r[f'drop_{k}'] - (rep.clean[k] - r[k])) < 1e-12 for k in REPORT_METRICS)
    # the strongest noise must bite: on average over the methods, pixel AUROC falls
    worst = [next(r for r in rep if (r['perturbation'], r['severity']) == ('gaussian_noise', 5)) for rep in reports.values()]
    assert sum(r['drop_pixel_AUROC'] for r in worst) > 0, worst


@pytest.mark.skipif(not SLOW, reason='slow real-data check: set DAF_LITE_SLOW=1')
def test_daf_synthesis_spread_bottle(shared_data):
    from daf_lite.robustness import synthesis_sensitivity
    rep = synthesis_sensitivity('daf', _bottle(shared_data, 'test'),
                                strategies=('draem', 'simple_texture', 'simple_shape', 'texture_shape'), budget=STEPS,
                                variants={'DAF': {}, 'DAF, no cue': dict(use_discrepancy=False)}, foreground='auto',
                                textures=str(shared_data / 'dtd_subset' / 'images'), progress=True)
    print(rep); print(rep.spread())
    assert len(rep) == 8 and all(0 <= r['pixel_AUROC'] <= 1 for r in rep)
