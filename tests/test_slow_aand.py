"""AAND on real data (MVTec AD bottle, 256 px) against RD4AD at an equal distillation budget and identical teacher
weights, all metrics side by side. Slow: runs only with DAF_LITE_SLOW=1 and ../shared/data.

Budget: DAF_LITE_SLOW_STEPS distillation steps (default 300) of batch 8 for both students; AAND also trains its RAA
branches for DAF_LITE_SLOW_STEPS_STAGE1 steps (default 150) on DRAEM anomalies with the DTD subset's textures. Teacher:
the pre-trained EfficientNet-Lite0 (the packaged ImageNet weights, identical in both); the students start from
identical weights too.
"""
import os, time

import pytest
import torch

pytestmark = pytest.mark.slow
SLOW = os.environ.get('DAF_LITE_SLOW') == '1'
STEPS = int(os.environ.get('DAF_LITE_SLOW_STEPS', '300'))
STEPS1 = int(os.environ.get('DAF_LITE_SLOW_STEPS_STAGE1', '150'))
KEYS = ('image_AUROC', 'image_AP', 'image_F1Max', 'pixel_AUROC', 'pixel_AP', 'pixel_AUPRO', 'pixel_F1Max')


def _score(model, ds) -> dict:
    from daf_lite.metrics import evaluate
    model.eval()
    maps, scores, masks, labels = [], [], [], []
    for b in torch.utils.data.DataLoader(ds, batch_size=16):
        o = model(b['image'])
        maps.append(o['maps']); scores.append(o['scores']); masks.append(b['mask']); labels.append(b['label'])
    return evaluate(torch.cat(maps), torch.cat(scores), torch.cat(masks), torch.cat(labels))


@pytest.mark.skipif(not SLOW, reason='slow real-data check: set DAF_LITE_SLOW=1')
def test_aand_vs_rd4ad_bottle(shared_data, tmp_path):
    from daf_lite.aand import AAND, AANDConfig
    from daf_lite.core import seed_everything
    from daf_lite.data import MVTecDataset
    from daf_lite.rd import RD4AD, RD4ADConfig
    from daf_lite.training import fit

    root = shared_data / 'mvtec_ad'
    train, val = MVTecDataset(root, 'bottle', 'train', image_size=256), MVTecDataset(root, 'bottle', 'val', image_size=256)
    test = MVTecDataset(root, 'bottle', 'test', image_size=256)
    common = dict(image_size=256, batch_size=8)
    runs = {'RD4AD': lambda: RD4AD(RD4ADConfig.preset('tiny', **common, epochs=None, steps=STEPS)),
            'AAND': lambda: AAND(AANDConfig.preset('tiny', **common, epochs_stage1=None, steps_stage1=STEPS1,
                                                   epochs_stage2=None, steps_stage2=STEPS, foreground='auto',
                                                   textures=str(shared_data / 'dtd_subset' / 'images')))}
    results, student = {}, None
    for name, build in runs.items():
        seed_everything(0)
        model = build()
        if student is None: student = [{k: v.clone() for k, v in m.state_dict().items()} for m in model.trainable()]
        else:                                                   # the same student weights at step 0 as well
            for m, sd in zip(model.trainable(), student): m.load_state_dict(sd)
        t0 = time.perf_counter()
        h = fit(model, train, val, seed=0, progress=False)
        secs = time.perf_counter() - t0
        m = _score(model, test)
        results[name] = {**{k: round(float(m[k]), 3) for k in KEYS}, 'train_s': round(secs)}
        print(name, h, results[name], flush=True)

    from daf_lite.baselines import PaDiM, PaDiMConfig, reference_label
    t0 = time.perf_counter()
    ref = PaDiM(PaDiMConfig.preset('tiny', image_size=256))
    fit(ref, train, val, seed=0, progress=False)                # the training-free reference over the same teacher
    m = _score(ref, test)
    results[reference_label()] = {**{k: round(float(m[k]), 3) for k in KEYS}, 'train_s': round(time.perf_counter() - t0)}
    print(f'\nMVTec AD bottle, 256 px, {STEPS} distillation steps of batch 8 (+{STEPS1} stage-1 steps for AAND), '
          f'the pre-trained EfficientNet-Lite0 teacher, identical initial student weights')
    for name, r in results.items(): print(f'{name:>32}: ' + ', '.join(f'{k} {v}' for k, v in r.items()))
    for name, r in results.items():
        assert all(0.0 <= r[k] <= 1.0 for k in KEYS), (name, r)
    assert results['AAND']['pixel_AUROC'] > 0.9, results['AAND']        # on a pre-trained teacher, AAND localises
