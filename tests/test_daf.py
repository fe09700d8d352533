"Fast checks of daf_lite.daf that do not belong in the chapter: registry, checkpoint round trip, a short fit."
import warnings

import pytest
import torch

warnings.simplefilter('ignore', UserWarning)


@pytest.fixture(scope='module')
def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=g)
    mask = torch.zeros(2, 1, 64, 64); mask[:, :, 10:30, 20:40] = 1
    return {'image': x, 'augmented': x * (1 - mask) + mask * 0.5, 'anomaly_mask': mask}


def small(**kw):
    from daf_lite.daf import DAF, DAFConfig
    return DAF(DAFConfig.preset('tiny', weights='random', image_size=64, width=16, **kw))


def test_registered():
    from daf_lite.core import get_method
    from daf_lite.daf import DAF, DAFConfig
    spec = get_method('daf')
    assert spec.model_cls is DAF and spec.config_cls is DAFConfig and not spec.training_free
    assert set(DAFConfig.presets()) >= {'tiny', 'paper'}
    for f in ('backbone', 'layers', 'weights', 'image_size', 'synthesis', 'textures', 'foreground', 'use_discrepancy',
              'lr', 'weight_decay', 'batch_size', 'epochs', 'steps', 'warmup_epochs', 'lr_decay_at', 'seg_weight',
              'topk', 'sigma'):
        assert hasattr(DAFConfig(), f), f


def test_stage_protocol(batch):
    m = small(synthesis='simple_shape')
    m.eval(); m(batch['image'])                     # predicting first must not spoil training afterwards
    (st,) = m.stages()
    assert st.data == 'synthetic' and st.synthesizer is not None
    params = st.parameters()
    assert not any(p is q for p in params for q in m.teacher.parameters())
    for mod in st.train_modules(): mod.train()
    out = st.loss(batch)
    assert torch.isfinite(out['loss']) and out['loss'].requires_grad
    out['loss'].backward()
    assert all(p.grad is not None for p in params)


def test_checkpoint_round_trip(tmp_path, batch):
    from daf_lite.daf import DAF
    from daf_lite.training import save_checkpoint, load_checkpoint
    torch.manual_seed(0)
    m = small().eval()
    save_checkpoint(tmp_path, m)
    torch.manual_seed(1)
    m2 = DAF(m.config.replace(weights='random')).eval()
    load_checkpoint(tmp_path, m2)
    a, b = m(batch['image']), m2(batch['image'])
    torch.testing.assert_close(a['maps'], b['maps']); torch.testing.assert_close(a['scores'], b['scores'])


def test_short_fit_lowers_loss():
    from daf_lite.data import MVTecDataset, toy_root
    from daf_lite.training import fit
    ds = MVTecDataset(toy_root(), 'tile', split='train', image_size=64)
    m = small(steps=8, epochs=None, batch_size=4, lr=2e-3)
    h = fit(m, ds, seed=0, progress=False)
    out = m(torch.stack([ds[0]['image'], ds[1]['image']]))
    assert out['maps'].shape == (2, 1, 64, 64) and torch.isfinite(out['maps']).all()
    kd = h.terms['synthetic']['distill']
    assert len(h.losses['synthetic']) == 8 and sum(kd[-3:]) / 3 < kd[0], kd   # the student starts to imitate
