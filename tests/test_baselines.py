"Real-data checks of the training-free baselines (the chapter 03a_baselines holds the unit tests)."
import os, time, warnings

import pytest
import torch

SLOW = os.environ.get('DAF_LITE_SLOW') == '1'


@pytest.mark.slow
@pytest.mark.skipif(not SLOW, reason='slow real-data check; run with DAF_LITE_SLOW=1')
def test_padim_bottle(shared_data):
    "PaDiM with the default pre-trained EfficientNet-Lite0 on MVTec bottle at 256 px: one pass, near-perfect, in bounded time."
    from torch.utils.data import DataLoader
    from daf_lite.baselines import PaDiM, PaDiMConfig
    from daf_lite.core import seed_everything
    from daf_lite.data import MVTecDataset
    from daf_lite.metrics import evaluate
    root = shared_data / 'mvtec_ad'
    train = MVTecDataset(root, 'bottle', split='train', image_size=256, val_fraction=0)
    test = MVTecDataset(root, 'bottle', split='test', image_size=256)
    from daf_lite.teacher import WeightsWarning
    seed_everything(0)
    with warnings.catch_warnings():
        warnings.simplefilter('error', WeightsWarning)                 # the default teacher is never random
        model = PaDiM(PaDiMConfig.preset('tiny', image_size=256))
    assert model.teacher.pretrained, model.teacher.weights_source
    t0 = time.perf_counter()
    model.stages()[0].fit_pass(DataLoader(train, batch_size=16))
    maps, scores, masks, labels = [], [], [], []
    with torch.no_grad():
        for b in DataLoader(test, batch_size=16):
            o = model(b['image']); maps.append(o['maps']); scores.append(o['scores'])
            masks.append(b['mask']); labels.append(b['label'])
    secs = time.perf_counter() - t0
    m = evaluate(torch.cat(maps), torch.cat(scores), torch.cat(masks), torch.cat(labels))
    assert model.inv_cov.shape == (64 * 64, 100, 100)
    # measured: image / pixel AUROC 0.998 / 0.972, AUPRO 0.873, 24 s on one core of a busy 2-core CPU
    assert m['image_AUROC'] > 0.98 and m['pixel_AUROC'] > 0.95 and m['pixel_AUPRO'] > 0.8, m
    assert secs < 300, f'PaDiM fit + test took {secs:.0f} s on bottle (target: under 60 s on one free core)'
