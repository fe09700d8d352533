"""DAF on real data (MVTec AD bottle, 256 px): DAF vs RD4AD at an equal training budget and identical teacher weights,
and DAF under DRAEM (DTD textures) vs simple_shape synthesis. Slow: runs only with DAF_LITE_SLOW=1 and ../shared/data.

Budget: DAF_LITE_SLOW_STEPS optimiser steps (default 300) of batch 8 for every run, each method's `tiny` preset at
256 px: the pre-trained EfficientNet-Lite0 teacher (the packaged ImageNet weights, identical in every model).
"""
import dataclasses, os, time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow
SLOW = os.environ.get('DAF_LITE_SLOW') == '1'
STEPS = int(os.environ.get('DAF_LITE_SLOW_STEPS', '300'))
KEYS = ('image_AUROC', 'pixel_AUROC', 'pixel_AUPRO', 'pixel_AP')


def _budget(config_cls) -> dict:
    "Config overrides that make a method train for STEPS steps of batch 8 at 256 px."
    names = {f.name for f in dataclasses.fields(config_cls)}
    over = dict(image_size=256, steps=STEPS, batch_size=8)
    if 'epochs' in names: over['epochs'] = None
    return {k: v for k, v in over.items() if k in names}


@pytest.mark.skipif(not SLOW, reason='slow real-data check: set DAF_LITE_SLOW=1')
def test_daf_bottle(shared_data, tmp_path):
    from daf_lite.core import get_method, seed_everything
    from daf_lite.detector import Detector

    textures = shared_data / 'dtd_subset' / 'images'

    runs = {'DAF draem+DTD': ('daf', dict(synthesis='draem', textures=str(textures), foreground='auto')),
            'DAF simple_shape': ('daf', dict(synthesis='simple_shape', foreground='auto')),
            'RD4AD': ('rd4ad', {})}
    results = {}
    for name, (method, extra) in runs.items():
        seed_everything(0)
        over = {**_budget(get_method(method).config_cls), **extra}
        det = Detector(method, 'tiny', **over)
        assert det.model.teacher.pretrained
        t0 = time.perf_counter()
        det.fit(shared_data / 'mvtec_ad' / 'bottle', seed=0, progress=False)
        secs = time.perf_counter() - t0
        m = det.evaluate(shared_data / 'mvtec_ad' / 'bottle')
        results[name] = {**{k: round(float(m[k]), 3) for k in KEYS}, 'train_s': round(secs)}
        print(name, results[name], flush=True)

    from daf_lite.baselines import reference_label
    t0 = time.perf_counter()
    ref = det.reference(shared_data / 'mvtec_ad' / 'bottle')    # the training-free reference, the same teacher weights
    m = ref.evaluate(shared_data / 'mvtec_ad' / 'bottle')
    results[reference_label()] = {**{k: round(float(m[k]), 3) for k in KEYS}, 'train_s': round(time.perf_counter() - t0)}
    print(f'\nMVTec AD bottle, 256 px, {STEPS} steps of batch 8 each, the pre-trained EfficientNet-Lite0 teacher')
    for name, r in results.items(): print(f'{name:>32}: ' + ', '.join(f'{k} {v}' for k, v in r.items()))
    for name, r in results.items():
        assert all(0.0 <= r[k] <= 1.0 for k in KEYS), (name, r)
    for name in ('DAF draem+DTD', 'DAF simple_shape', 'RD4AD'):     # on a pre-trained teacher, every model localises
        assert results[name]['pixel_AUROC'] > 0.9, (name, results[name])
