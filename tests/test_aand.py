"Fast checks of daf_lite.amplification and daf_lite.aand that do not belong in the chapters: registry, checkpoints, a short fit."
import warnings

import pytest
import torch

warnings.simplefilter('ignore', UserWarning)


def small(**kw):
    from daf_lite.aand import AAND, AANDConfig
    return AAND(AANDConfig.preset('tiny', weights='random', image_size=64, **kw))


@pytest.fixture(scope='module')
def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=g)
    mask = torch.zeros(2, 1, 64, 64); mask[:, :, 10:30, 20:40] = 1
    return {'image': x, 'augmented': x * (1 - mask) + mask * 0.5, 'anomaly_mask': mask}


def test_registered():
    from daf_lite.core import get_method
    from daf_lite.aand import AAND, AANDConfig
    spec = get_method('aand')
    assert spec.model_cls is AAND and spec.config_cls is AANDConfig and not spec.training_free
    assert set(AANDConfig.presets()) >= {'tiny', 'paper'}
    for f in ('backbone', 'layers', 'weights', 'image_size', 'synthesis', 'textures', 'lr', 'betas', 'batch_size',
              'epochs_stage1', 'epochs_stage2', 'steps_stage1', 'steps_stage2', 'memory_items', 'tau', 'margin',
              'focal_alpha', 'focal_gamma', 'hkd_k', 'sigma'):
        assert hasattr(AANDConfig(), f), f


def test_bad_options():
    from daf_lite.aand import AAND, AANDConfig
    with pytest.raises(ValueError, match='distill_loss'): small(distill_loss='mse')
    with pytest.raises(TypeError, match='AANDConfig'):
        from daf_lite.amplification import AmplificationConfig
        AAND(AmplificationConfig.preset('tiny', weights='random'))


def test_one_backbone_pass_per_call(batch):
    m = small()
    calls = []
    m.teacher.model.register_forward_hook(lambda *a: calls.append(1))
    st1, st2 = m.stages()
    st1.loss(batch); assert len(calls) == 1
    st2.loss(batch); assert len(calls) == 2
    m.eval(); m(batch['image']); assert len(calls) == 3


def test_stage_parameters_are_disjoint(batch):
    m = small()
    st1, st2 = m.stages()
    p1, p2 = {id(p) for p in st1.parameters()}, {id(p) for p in st2.parameters()}
    teacher = {id(p) for p in m.teacher.parameters()}
    assert p1 and p2 and not p1 & p2 and not (p1 | p2) & teacher
    assert p1 == {id(p) for p in m.amplifiers.parameters()}


def test_teacher_forcing_only_changes_masked_positions(batch):
    "With the mask as the gate, the amplified features equal the vanilla ones outside the (downsampled) mask."
    from daf_lite.amplification import downsample_mask
    m = small()
    with torch.no_grad():
        ts = m.teacher(batch['augmented'])
        amp, _ = m.amplify(ts, batch['anomaly_mask'])
    for t, a in zip(ts, amp):
        y = downsample_mask(batch['anomaly_mask'], t.shape[-2:]).expand_as(t)
        torch.testing.assert_close(a[~y], t[~y])
        assert not torch.equal(a[y], t[y])


def test_checkpoint_round_trip(tmp_path, batch):
    from daf_lite.aand import AAND
    from daf_lite.training import save_checkpoint, load_checkpoint
    torch.manual_seed(0)
    m = small().eval()
    save_checkpoint(tmp_path, m)
    torch.manual_seed(1)
    m2 = AAND(m.config.replace(weights='random')).eval()
    load_checkpoint(tmp_path, m2)
    a, b = m(batch['image']), m2(batch['image'])
    torch.testing.assert_close(a['maps'], b['maps']); torch.testing.assert_close(a['scores'], b['scores'])
    torch.testing.assert_close(a['cues']['gate1'], b['cues']['gate1'])


def test_short_fit_trains_both_stages():
    from daf_lite.data import MVTecDataset, toy_root
    from daf_lite.training import fit
    ds = MVTecDataset(toy_root(), 'tile', split='train', image_size=64)
    m = small(steps_stage1=6, steps_stage2=6, batch_size=4)
    before = [p.detach().clone() for p in m.amplifiers.parameters()]
    h = fit(m, ds, seed=0, progress=False)
    assert list(h.losses) == ['amplify', 'distill'] and all(len(v) == 6 for v in h.losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, m.amplifiers.parameters()))
    out = m(torch.stack([ds[0]['image'], ds[1]['image']]))
    assert out['maps'].shape == (2, 1, 64, 64) and torch.isfinite(out['maps']).all()
    assert h.losses['distill'][-1] < h.losses['distill'][0]
