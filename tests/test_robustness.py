"Fast checks of daf_lite.robustness: the perturbations (identity, determinism, monotone severities), the report, the sensitivity protocol."
import csv
import warnings

import pytest
import torch

warnings.simplefilter('ignore', UserWarning)


@pytest.fixture(scope='module')
def toy():
    from daf_lite.data import MVTecDataset, AnomalyDataset, toy_root
    test = MVTecDataset(toy_root(), 'tile', 'test', image_size=64)
    return {'test': test, 'small': AnomalyDataset(test.samples[::4], image_size=64),
            'x': torch.stack([test[i]['image'] for i in range(0, 40, 5)]),
            'm': torch.stack([test[i]['mask'] for i in range(0, 40, 5)])}


def kinds():
    from daf_lite.robustness import PERTURBATIONS
    return PERTURBATIONS


# ---- perturbations -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['brightness', 'contrast', 'defocus_blur', 'gaussian_noise', 'rotation', 'jpeg'])
def test_perturbation_basics(kind, toy):
    from daf_lite.robustness import perturb
    x, m = toy['x'], toy['m']
    y0, m0 = perturb(x, kind, 0, masks=m)
    assert torch.equal(y0, x) and torch.equal(m0, m) and y0.data_ptr() != x.data_ptr()
    for s in range(1, 6):
        a, ma = perturb(x, kind, s, seed=3, masks=m)
        b, mb = perturb(x, kind, s, seed=3, masks=m)
        assert torch.equal(a, b) and torch.equal(ma, mb)                        # deterministic by seed
        assert a.shape == x.shape and a.dtype == x.dtype and ma.shape == m.shape
        assert 0 <= float(a.min()) and float(a.max()) <= 1
        assert not torch.equal(a, x)
        one = torch.stack([perturb(x[i], kind, s, seed=3, start=i) for i in range(len(x))])
        assert torch.equal(one, a)                                               # independent of batching
        if kind != 'rotation': assert torch.equal(ma, m)                        # photometric: masks untouched
    random = kind in ('gaussian_noise', 'rotation')
    assert torch.equal(perturb(x, kind, 4, seed=1), perturb(x, kind, 4, seed=2)) != random


@pytest.mark.parametrize('kind', ['brightness', 'contrast', 'defocus_blur', 'gaussian_noise', 'rotation', 'jpeg'])
def test_psnr_falls_with_severity(kind, toy):
    "Strictly decreasing PSNR against the clean images (rotation: on a smooth ramp, see the chapter)."
    from daf_lite.robustness import perturb, psnr
    x = toy['x']
    if kind == 'rotation':
        u = torch.linspace(0, 1, 64)
        x = torch.stack([u[None].expand(64, 64), u[:, None].expand(64, 64), (u[None] + u[:, None]) / 2])[None]
    curve = [float(psnr(perturb(x, kind, s), x).mean()) for s in range(1, 6)]
    assert all(a > b for a, b in zip(curve, curve[1:])), curve


def test_psnr_reference():
    from daf_lite.robustness import psnr
    a = torch.zeros(2, 3, 4, 4); b = a.clone(); b[1] += 0.1
    assert float(psnr(a, b)[1]) == pytest.approx(20.0, abs=1e-4)
    assert float(psnr(a, b)[0]) > 90


def test_rotation_moves_masks_with_images():
    "An image that *is* its mask: after rotation, thresholding the image gives (almost) the rotated mask."
    from daf_lite.robustness import perturb
    m = torch.zeros(4, 1, 64, 64); m[:, :, 10:30, 35:60] = 1
    x = m.expand(-1, 3, -1, -1).clone()
    for s in (1, 3, 5):
        y, mr = perturb(x, 'rotation', s, seed=5, masks=m)
        assert set(mr.unique().tolist()) <= {0.0, 1.0}
        pred = y.mean(1, keepdim=True) > 0.5
        inter, union = (pred & (mr > 0)).sum(), (pred | (mr > 0)).sum()
        assert float(inter / union) > 0.9
        assert not torch.equal(mr, m)


def test_photometric_invariants():
    from daf_lite.robustness import perturb, defocus_blur
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    c = torch.full((1, 3, 32, 32), 0.37)
    torch.testing.assert_close(defocus_blur(c, 4.0), c)                     # a constant image stays constant
    torch.testing.assert_close(perturb(x, 'contrast', 3).mean((-2, -1)), x.mean((-2, -1)))
    assert (perturb(x, 'brightness', 2).amax(1) >= x.amax(1) - 1e-6).all()
    j = perturb(x, 'jpeg', 2)
    torch.testing.assert_close(j * 255, (j * 255).round(), atol=1e-4, rtol=0)   # 8-bit decoded values


def test_bad_arguments(toy):
    from daf_lite.robustness import perturb
    x = toy['x']
    with pytest.raises(ValueError, match='unknown perturbation'): perturb(x, 'fog', 1)
    with pytest.raises(ValueError, match='severity=6'): perturb(x, 'jpeg', 6)
    with pytest.raises(ValueError, match='severity'): perturb(x, 'jpeg', 1.5)
    with pytest.raises(ValueError, match='masks'): perturb(x, 'rotation', 1, masks=toy['m'][:2])


# ---- the report ----------------------------------------------------------------------------------------------------

class Darkness:
    "A detector stand-in: map = 1 - grey level, score = max."
    method = 'darkness'
    def predict(self, x, batch_size=None):
        from daf_lite.core import Prediction
        maps = 1 - x.mean(1, keepdim=True)
        return Prediction(maps, maps.flatten(1).amax(1))


class DarknessModel(torch.nn.Module):
    "The same, as an AnomalyModel-like module (eval forward -> dict)."
    def __init__(self): super().__init__(); self.w = torch.nn.Parameter(torch.ones(()))
    def forward(self, x):
        maps = self.w * (1 - x.mean(1, keepdim=True))
        return {'maps': maps, 'scores': maps.flatten(1).amax(1)}


class Coarse(Darkness):
    "Maps at half the input size: the report must bring the masks to them."
    def predict(self, x, batch_size=None):
        p = super().predict(torch.nn.functional.avg_pool2d(x, 2))
        return p


def test_report_rows_and_drops(toy):
    from daf_lite.robustness import robustness_report, REPORT_METRICS
    rep = robustness_report(Darkness(), toy['small'], perturbations=('contrast', 'rotation', 'jpeg'), severities=(1, 4))
    assert len(rep) == 1 + 3 * 2 and rep.name == 'darkness'
    assert rep[0]['perturbation'] == 'clean' and rep[0]['severity'] == 0
    assert rep.column('severity') == [0, 1, 4, 1, 4, 1, 4]
    for r in rep:
        for k in REPORT_METRICS:
            assert r[f'drop_{k}'] == pytest.approx(rep.clean[k] - r[k], abs=1e-12)
            assert 0 <= r[k] <= 1
    s = rep.summary()
    assert s.column('perturbation') == ['contrast', 'rotation', 'jpeg']
    assert s[0]['image_AUROC'] == pytest.approx((rep[1]['image_AUROC'] + rep[2]['image_AUROC']) / 2)
    assert rep.mean_drop('pixel_AUROC') == pytest.approx(sum(r['drop_pixel_AUROC'] for r in rep.rows[1:]) / 6)


def test_report_is_reproducible_and_model_adapter_agrees(toy):
    from daf_lite.robustness import robustness_report
    args = dict(perturbations=('gaussian_noise', 'rotation'), severities=(2,), seed=4)
    a = robustness_report(Darkness(), toy['small'], **args)
    b = robustness_report(Darkness(), toy['small'], **args)
    c = robustness_report(DarknessModel(), toy['small'], batch_size=3, **args)
    assert a.rows == b.rows
    for ra, rc in zip(a, c):
        for k, v in ra.items():
            if isinstance(v, float): assert rc[k] == pytest.approx(v, abs=1e-6)
    assert c.name == 'DarknessModel'


def test_report_resizes_masks_to_the_maps(toy):
    from daf_lite.robustness import robustness_report
    rep = robustness_report(Coarse(), toy['small'], perturbations=('brightness',), severities=(1,))
    assert len(rep) == 2 and all(0 <= r['pixel_AUROC'] <= 1 for r in rep)


def test_report_refuses_bad_input(toy):
    from daf_lite.robustness import robustness_report
    from daf_lite.core import DataError
    with pytest.raises(TypeError, match='Detector'): robustness_report(object(), toy['small'])
    with pytest.raises(ValueError, match='unknown perturbation'): robustness_report(Darkness(), toy['small'], ['fog'])
    with pytest.raises(DataError, match='empty'): robustness_report(Darkness(), [])


def test_table_csv_and_save(toy, tmp_path):
    from daf_lite.robustness import robustness_report, combine_reports, plot_comparison
    rep = robustness_report(Darkness(), toy['small'], perturbations=('contrast',), severities=(1, 2))
    paths = rep.save(tmp_path, 'dark')
    assert [p.name for p in paths] == ['dark.csv', 'dark.png'] and all(p.stat().st_size > 0 for p in paths)
    rows = list(csv.DictReader(open(paths[0])))
    assert len(rows) == 3 and list(rows[0]) == rep.columns
    assert float(rows[2]['drop_image_AUROC']) == pytest.approx(rep[2]['drop_image_AUROC'])
    both = combine_reports({'a': rep, 'b': rep})
    assert len(both) == 6 and both.columns[0] == 'method' and len(both.where(method='b')) == 3
    assert 'perturbation' in repr(rep).splitlines()[0]
    plot_comparison({'a': rep, 'b': rep})


# ---- synthesis sensitivity -----------------------------------------------------------------------------------------

def test_with_budget_sets_every_stage():
    from daf_lite.robustness import with_budget
    from daf_lite.daf import DAFConfig
    from daf_lite.aand import AANDConfig
    from daf_lite.gnl import GNLConfig
    d = with_budget(DAFConfig.preset('paper'), 9)
    assert (d.steps, d.epochs) == (9, None)
    a = with_budget(AANDConfig.preset('paper'), 9)
    assert (a.steps_stage1, a.steps_stage2, a.epochs_stage1, a.epochs_stage2) == (9, 9, None, None)
    g = with_budget(GNLConfig.preset('paper'), 9)
    assert (g.steps, g.steps_seg, g.epochs, g.epochs_seg) == (9, 9, None, None)
    with pytest.raises(ValueError, match='budget'): with_budget(g, 0)


def test_sensitivity_refuses_methods_without_synthesis(toy):
    from daf_lite.robustness import synthesis_sensitivity
    with pytest.raises(ValueError, match='no synthesis strategy'): synthesis_sensitivity('rd4ad', toy['test'])
    with pytest.raises(ValueError, match='unknown synthesis'):
        synthesis_sensitivity('daf', toy['test'], strategies=('perlin',))


def test_sensitivity_table_and_spread(toy):
    from daf_lite.robustness import synthesis_sensitivity
    rep = synthesis_sensitivity('daf', toy['test'], strategies=('simple_shape', 'cutpaste'), budget=1, test=toy['small'],
                                variants={'on': {}, 'off': dict(use_discrepancy=False)}, weights='random', width=8,
                                batch_size=4)
    from daf_lite.baselines import reference_label
    assert len(rep) == 5 and rep.column('variant') == ['on', 'on', 'off', 'off', reference_label()]
    assert rep.column('strategy') == ['simple_shape', 'cutpaste'] * 2 + ['none']
    sp = rep.spread()
    assert set(sp.column('variant')) == {'on', 'off'}                    # the reference is not spread over strategies
    for v in ('on', 'off'):
        vals = [r['pixel_AUROC'] for r in rep if r['variant'] == v]
        row = sp.where(variant=v, metric='pixel_AUROC')[0]
        assert row['range'] == pytest.approx(max(vals) - min(vals)) and row['mean'] == pytest.approx(sum(vals) / 2)


def test_sensitivity_without_reference(toy):
    from daf_lite.robustness import synthesis_sensitivity
    rep = synthesis_sensitivity('daf', toy['test'], strategies=('cutpaste',), budget=1, test=toy['small'],
                                reference=None, weights='random', width=8, batch_size=4)
    assert rep.column('variant') == ['daf'] and rep.reference is None
    with pytest.raises(ValueError, match='training-free'):
        synthesis_sensitivity('daf', toy['test'], strategies=('cutpaste',), budget=1, reference='rd4ad')


# ---- one protocol for every method ---------------------------------------------------------------------------------

def test_train_method_budget_and_shared_teacher(toy):
    from daf_lite.robustness import train_method
    a = train_method('rd4ad', toy['test'].with_split('train'), None, budget=2, weights='random', image_size=64)
    assert a.config.steps == 2 and a.config.epochs is None
    b = train_method('daf', toy['test'].with_split('train'), None, budget=1, teacher=a.teacher, weights='random',
                     image_size=64, width=8)
    x = torch.rand(2, 3, 64, 64)
    assert all(torch.equal(u, v) for u, v in zip(a.teacher(x), b.teacher(x)))
    c = train_method('padim', toy['test'].with_split('train'), None, budget=5, teacher=a.teacher, image_size=64)
    assert c.is_fitted and torch.equal(c.teacher(x)[0], a.teacher(x)[0])       # budget ignored: nothing to train


def test_compare_robustness_adds_the_reference(toy, tmp_path):
    from daf_lite.robustness import compare_robustness, save_comparison, comparison_summary
    from daf_lite.baselines import reference_label
    with pytest.raises(ValueError, match=r"\['colour'\]"): compare_robustness(('rd4ad',), toy['test'], colour=1)
    with pytest.raises(ValueError, match='training-free'): compare_robustness(('rd4ad',), toy['test'], reference='daf')
    with pytest.raises(ValueError, match='at least one'): compare_robustness((), toy['test'])
    reps = compare_robustness(('rd4ad',), toy['test'], budget=1, perturbations=('brightness',), severities=(2,),
                              test=toy['small'], weights='random', image_size=64, batch_size=4)
    assert list(reps) == ['rd4ad', reference_label()]
    for rep in reps.values():
        assert len(rep) == 2 and rep.train_s >= 0 and all(0 <= r['pixel_AUROC'] <= 1 for r in rep)
    s = comparison_summary(reps)
    assert s.column('method') == list(reps)
    assert s[1]['clean_image_AUROC'] == reps[reference_label()].clean['image_AUROC']
    names = sorted(p.name for p in save_comparison(reps, tmp_path, 'r'))
    assert 'r_all.csv' in names and 'r_padim_training-free_reference.csv' in names and 'r_pixel_AUROC.png' in names
    rows = list(csv.DictReader(open(tmp_path / 'r_all.csv')))
    assert {r['method'] for r in rows} == set(reps) and len(rows) == 4


def test_a_real_detector_is_accepted(toy):
    "If the Detector front door exists, robustness_report takes it as is."
    detector = pytest.importorskip('daf_lite.detector')
    from daf_lite.data import MVTecDataset, toy_root
    from daf_lite.robustness import robustness_report
    det = detector.Detector('rd4ad', 'tiny', weights='random', image_size=64, steps=1, batch_size=4)
    det.fit(MVTecDataset(toy_root(), 'tile', 'train', image_size=64), progress=False)
    rep = robustness_report(det, toy['small'], perturbations=('jpeg',), severities=(3,))
    assert len(rep) == 2 and rep.name == 'rd4ad'
