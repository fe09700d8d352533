"""Robustness on real data (MVTec AD bottle): RD4AD, DAF, AAND and GNL clean vs perturbed at an equal budget and identical
teacher weights; DAF's synthesis-strategy spread with and without its discrepancy cue. Slow: runs only with
DAF_LITE_SLOW=1 and ../shared/data.

Budget: DAF_LITE_SLOW_STEPS optimiser steps (default 200) for every trained stage (`with_budget`) of each method's
`tiny` preset (the pre-trained EfficientNet-Lite0 teacher, 128 px); severities 1, 3, 5 of all six perturbations.
`compare_robustness` copies the same teacher weights (the first model's) into every model and adds the training-free
reference. `bench/robustness.py --data bottle` runs the
same protocol and writes the CSV/PNG outputs.
"""
import os

import pytest

pytestmark = pytest.mark.slow
SLOW = os.environ.get('DAF_LITE_SLOW') == '1'
STEPS = int(os.environ.get('DAF_LITE_SLOW_STEPS', '200'))


def _bottle(shared_data, split):
    from daf_lite.data import MVTecDataset
    return MVTecDataset(shared_data / 'mvtec_ad', 'bottle', split, image_size=128)


@pytest.mark.skipif(not SLOW, reason='slow real-data check: set DAF_LITE_SLOW=1')
def test_robustness_bottle(shared_data, tmp_path):
    from daf_lite.robustness import REPORT_METRICS, compare_robustness, comparison_summary, save_comparison
    from daf_lite.baselines import reference_label
    reports = compare_robustness(('rd4ad', 'daf', 'aand', 'gnl'), _bottle(shared_data, 'test'), budget=STEPS,
                                 severities=(1, 3, 5), foreground='auto', progress=True)
    save_comparison(reports, tmp_path)
    print(comparison_summary(reports), flush=True)
    assert list(reports) == ['rd4ad', 'daf', 'aand', 'gnl', reference_label()]
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
    assert len(rep) == 9 and all(0 <= r['pixel_AUROC'] <= 1 for r in rep)      # 2 variants x 4 strategies + reference
