"Fast checks of daf_lite.gnl that do not belong in the chapter: views, structure loss, stage isolation, checkpoints."
import copy
import warnings

import pytest
import torch
from torch.utils.data import Dataset

warnings.simplefilter('ignore', UserWarning)


def small(**kw):
    from daf_lite.gnl import GNL, GNLConfig
    return GNL(GNLConfig.preset('tiny', weights='random', image_size=64, seg_width=16, **kw))


class Images(Dataset):
    "n random normal images (3,64,64), as the training loop reads them."
    def __init__(self, n=8, size=64, seed=0):
        self.x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return {'image': self.x[i], 'label': 0}


def state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_registered():
    from daf_lite.core import get_method
    from daf_lite.gnl import GNL, GNLConfig
    spec = get_method('gnl')
    assert spec.model_cls is GNL and spec.config_cls is GNLConfig and not spec.training_free
    assert set(GNLConfig.presets()) >= {'tiny', 'paper'}
    for f in ('backbone', 'layers', 'weights', 'image_size', 'synthesis', 'textures', 'foreground', 'lr', 'betas',
              'batch_size', 'epochs', 'steps', 'epochs_seg', 'steps_seg', 'hkd_k', 'struct_weight', 'struct_temperature',
              'views', 'segmentation', 'focal_gamma', 'seg_rates', 'sigma'):
        assert hasattr(GNLConfig(), f), f


def test_bad_options():
    from daf_lite.gnl import GNL, NormalViews, structure_loss, ViewedSynthesizer
    from daf_lite.rd import RD4ADConfig
    with pytest.raises(ValueError, match='struct_reduction'): small(struct_reduction='sum')
    with pytest.raises(TypeError, match='GNLConfig'): GNL(RD4ADConfig.preset('tiny', weights='random'))
    with pytest.raises(ValueError, match='p_augmix'): NormalViews(p_augmix=1.5)
    with pytest.raises(ValueError, match='unknown view'): NormalViews(augmix_ops=('blur',))
    with pytest.raises(ValueError, match='p_anomaly'): ViewedSynthesizer(None, p_anomaly=-0.1)
    t = [torch.rand(1, 2, 4, 4)]
    with pytest.raises(ValueError, match='temperature'): structure_loss(t, t, temperature=0)
    with pytest.raises(ValueError, match='student maps'): structure_loss(t, t + t)


# ---- primitives and views ------------------------------------------------------------------------------------------

def test_rotate_matches_rot90_and_keeps_masks_binary():
    from daf_lite.gnl import rotate
    x = torch.rand(3, 2, 10, 10)
    for k in range(4): torch.testing.assert_close(rotate(x, 90.0 * k), torch.rot90(x, k, dims=(-2, -1)), atol=1e-5, rtol=0)
    m = (torch.rand(1, 1, 32, 32) > 0.7).float()
    r = rotate(m, 17.0, mode='nearest')
    assert set(r.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match='one angle'): rotate(x, [1.0, 2.0])
    with pytest.raises(ValueError, match='padding'): rotate(x, 1.0, padding='wrap')


def test_brightness_is_imagenet_c_hsv_value_shift():
    "Against an explicit RGB -> HSV -> V + c (clipped) -> RGB round trip per pixel (colorsys)."
    import colorsys
    from daf_lite.gnl import brightness
    x = torch.rand(3, 6, 6, generator=torch.Generator().manual_seed(0))
    for c in (0.15, 0.6, -0.2):
        ref = torch.empty_like(x)
        for i in range(6):
            for j in range(6):
                h, s, v = colorsys.rgb_to_hsv(*x[:, i, j].tolist())
                ref[:, i, j] = torch.tensor(colorsys.hsv_to_rgb(h, s, min(max(v + c, 0.0), 1.0)))
        torch.testing.assert_close(brightness(x, c), ref, atol=1e-5, rtol=0)


def test_views_are_deterministic_and_in_range():
    from daf_lite.gnl import NormalViews
    from daf_lite.synthesis import item_generator
    x = torch.rand(3, 48, 48, generator=torch.Generator().manual_seed(1))
    v = NormalViews()
    outs = [v(x, item_generator(0, i))[0] for i in range(12)]
    again = [v(x, item_generator(0, i))[0] for i in range(12)]
    assert all(torch.equal(a, b) for a, b in zip(outs, again))
    assert all(0 <= float(o.min()) and float(o.max()) <= 1 for o in outs)
    assert len({round(float(o.sum()), 3) for o in outs}) > 8          # different seeds, different views
    assert sum(not torch.equal(o, x) for o in outs) >= 11


def test_augmix_views_do_not_move_pixels():
    "AugMix views are photometric: a mask comes back unchanged, and a constant image stays spatially constant."
    from daf_lite.gnl import NormalViews
    from daf_lite.synthesis import item_generator
    v = NormalViews(p_augmix=1.0, augmix_ops=('brightness', 'contrast', 'color'))
    x = torch.full((3, 16, 16), 0.4)
    m = (torch.rand(1, 16, 16) > 0.5).float()
    for i in range(10):
        y, mm = v.view(x, item_generator(1, i), m)
        assert torch.equal(mm, m)
        assert float(y.std((-2, -1)).max()) < 1e-6


def test_mask_turns_with_the_image():
    "A white square on grey, rotation-only chains: the rotated mask covers the white pixels and nothing else."
    from daf_lite.gnl import NormalViews, ViewedSynthesizer
    from daf_lite.synthesis import item_generator

    def square(image, g):
        m = torch.zeros(1, 64, 64); m[:, 8:28, 36:58] = 1
        return image * (1 - m) + m, m

    views = NormalViews(p_augmix=0.0, rotation_ops=('rotation',), fill=0.2)
    synth = ViewedSynthesizer(square, views, p_anomaly=1.0)
    x = torch.full((3, 64, 64), 0.2)
    moved = 0
    for i in range(8):
        y, m = synth(x, item_generator(2, i))
        inside = -torch.nn.functional.max_pool2d(-m[None], 3, 1, 1)[0] > 0.5      # eroded mask
        outside = torch.nn.functional.max_pool2d(m[None], 3, 1, 1)[0] == 0       # dilated complement
        assert inside.any() and (y[:, inside[0]] > 0.95).all() and (y[:, outside[0]] < 0.25).all()
        moved += not torch.equal(m[:, 8:28, 36:58], torch.ones(1, 20, 22))
    assert moved >= 6


def test_viewed_nsa_gets_its_source_images_from_the_dataset():
    from daf_lite.gnl import ViewedSynthesizer
    from daf_lite.synthesis import make_synthesizer, SynthesisDataset
    inner = make_synthesizer('nsa')
    vs = ViewedSynthesizer(inner, p_anomaly=1.0)
    ds = SynthesisDataset(Images(4), vs)
    item = ds[0]
    assert item['augmented'].shape == (3, 64, 64) and item['anomaly_mask'].shape == (1, 64, 64)
    assert inner.source_images is None and vs.source_images is None          # the originals are not mutated


# ---- losses --------------------------------------------------------------------------------------------------------

def test_structure_loss_zero_iff_same_distribution():
    from daf_lite.gnl import structure_loss
    g = torch.Generator().manual_seed(0)
    ts = [torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 8, 4, 4, generator=g)]
    assert float(structure_loss(ts, ts)) == 0.0
    shifted = [t + torch.randn(t.shape[0], t.shape[1], 1, 1, generator=g) for t in ts]   # per-channel offsets
    assert float(structure_loss(ts, shifted)) < 1e-6
    noisy = [t + 0.3 * torch.randn(t.shape, generator=g) for t in ts]
    for red in ('mean', 'kl'):
        assert float(structure_loss(ts, noisy, reduction=red)) > 1e-4
    # 'kl' is the mean over (B, C) of a true KL: compare one channel with torch's kl_div
    t, s = ts[0][:1, :1], noisy[0][:1, :1]
    ref = torch.nn.functional.kl_div(s.flatten(2).log_softmax(-1), t.flatten(2).log_softmax(-1), log_target=True,
                                     reduction='sum')
    torch.testing.assert_close(structure_loss([t], [s], reduction='kl'), ref)


def test_structure_loss_is_finite_where_a_plain_exp_overflows():
    from daf_lite.gnl import structure_loss
    t = torch.randn(1, 3, 8, 8) * 30 + 100                    # activations > 88: exp overflows in float32
    s = t + torch.randn_like(t)
    assert torch.isinf(torch.exp(t)).any()
    assert torch.isfinite(structure_loss([t], [s]))


def test_stage1_loss_counts_both_halves():
    "views=True: the loss on the stacked batch equals the sum of the losses on images and views run separately."
    from daf_lite.gnl import structure_loss
    m = small().eval()                                        # eval: BatchNorm does not mix the two halves
    x = torch.rand(2, 3, 64, 64); v = x.flip(-1)
    with torch.no_grad():
        both = m.loss({'image': x, 'augmented': v})
        def one(z):
            ts = m.teacher(z); ss = m.student(ts)
            return m.distillation(ts, ss) + m.config.struct_weight * structure_loss(ts, ss)
        torch.testing.assert_close(both['loss'], one(x) + one(v), rtol=1e-4, atol=1e-5)


# ---- stages --------------------------------------------------------------------------------------------------------

def test_one_backbone_pass_per_call():
    m = small()
    calls = []
    m.teacher.model.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    x = torch.rand(2, 3, 64, 64)
    mask = torch.zeros(2, 1, 64, 64); mask[..., 10:30, 10:30] = 1
    st1, st2 = m.stages()
    st1.loss({'image': x, 'augmented': x}); assert calls == [4]
    st2.loss({'image': x, 'augmented': x, 'anomaly_mask': mask}); assert calls == [4, 2]
    m.eval(); m(x); assert calls == [4, 2, 2]


def test_stage_parameters_are_disjoint():
    m = small()
    st1, st2 = m.stages()
    p1, p2 = {id(p) for p in st1.parameters()}, {id(p) for p in st2.parameters()}
    teacher = {id(p) for p in m.teacher.parameters()}
    assert p1 and p2 and not p1 & p2 and not (p1 | p2) & teacher
    assert p2 == {id(p) for p in m.seg.parameters()}


def test_segmentation_stage_leaves_the_student_unchanged():
    "Fit only stage 2: the student's weights *and* BatchNorm statistics stay bit-identical; the head changes."
    from daf_lite.training import fit
    torch.manual_seed(0)
    m = small(steps=0, epochs=None, steps_seg=3, seg_batch_size=4)
    assert [s.name for s in m.stages()] == ['segment']
    student, teacher, seg = state(torch.nn.ModuleList(m.trainable())), state(m.teacher), state(m.seg)
    h = fit(m, Images(8), seed=0, progress=False, device='cpu')
    assert len(h.losses['segment']) == 3
    assert same(state(torch.nn.ModuleList(m.trainable())), student)
    assert same(state(m.teacher), teacher)
    assert not same(state(m.seg), seg)


def test_distillation_stage_leaves_teacher_and_head_unchanged():
    from daf_lite.training import fit
    torch.manual_seed(0)
    m = small(steps=2, steps_seg=0, epochs_seg=None, batch_size=4)
    assert [s.name for s in m.stages()] == ['distill']
    student, teacher, seg = state(torch.nn.ModuleList(m.trainable())), state(m.teacher), state(m.seg)
    h = fit(m, Images(8), seed=0, progress=False, device='cpu')
    assert len(h.losses['distill']) == 2 and all(torch.isfinite(torch.tensor(h.losses['distill'])))
    assert set(h.terms['distill']) >= {'hkd', 'structure'}
    assert not same(state(torch.nn.ModuleList(m.trainable())), student)
    assert same(state(m.teacher), teacher) and same(state(m.seg), seg)


def test_training_is_reproducible():
    from daf_lite.training import fit
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = small(steps=2, steps_seg=2, batch_size=4, seg_batch_size=4)
        fit(m, Images(8), seed=3, progress=False, device='cpu')
        outs.append(m.eval()(Images(2, seed=9).x)['maps'])
    torch.testing.assert_close(outs[0], outs[1])


# ---- inference and checkpoints ------------------------------------------------------------------------------------

def test_forward_protocol_and_parts():
    from daf_lite.training import check_output
    x = torch.rand(2, 3, 64, 64)
    m = small(seg_weight=2.0).eval()
    out = check_output(m(x), x)
    torch.testing.assert_close(out['maps'], out['cues']['distillation'] + 2.0 * out['cues']['segmentation'])
    assert 0 <= float(out['cues']['segmentation'].min()) and float(out['cues']['segmentation'].max()) <= 1
    plain = small(segmentation=False).eval()
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith('seg.')})
    o2 = check_output(plain(x), x)
    assert 'segmentation' not in o2['cues']
    torch.testing.assert_close(o2['maps'], out['cues']['distillation'])
    torch.testing.assert_close(o2['scores'], o2['maps'].flatten(1).amax(1))


def test_checkpoint_round_trip(tmp_path):
    from daf_lite.gnl import GNL, GNLConfig
    from daf_lite.training import save_checkpoint, load_checkpoint
    torch.manual_seed(0)
    m = small().eval()
    save_checkpoint(tmp_path, m)
    info = load_checkpoint(tmp_path)
    m2 = GNL(GNLConfig.from_dict(info['config']))
    load_checkpoint(tmp_path, m2)
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(m2.eval()(x)['maps'], m(x)['maps'])
