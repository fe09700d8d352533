"Synthesis strategies: shapes, ranges, non-empty masks, unchanged outside the mask, seeding, devices, workers, bad input."
import pytest
import torch
import torch.nn.functional as F
from daf_lite.core import DataError, available_devices
from daf_lite.data import MVTecDataset, toy_root
from daf_lite.synthesis import (SYNTHESIZERS, SynthesisDataset, TextureSource, foreground_mask, make_synthesizer,
                                perlin_mask, procedural_texture)

NAMES = sorted(SYNTHESIZERS)
DEVICES = [d for d in available_devices() if d in ('cpu', 'cuda')]


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    "Per-image work, as in a DataLoader worker (several threads only wait on each other on a busy 2-core machine)."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def washer():
    return MVTecDataset(toy_root(), 'washer', 'train', image_size=64)


def gen(seed): return torch.Generator().manual_seed(seed)


def build(name, sources, **kw):
    return make_synthesizer(name, **kw, **({'source_images': sources} if name == 'nsa' else {}))


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('foreground', [None, 'auto'])
@pytest.mark.parametrize('name', NAMES)
def test_contract(name, foreground, device, washer):
    sources = torch.stack([washer[i]['image'] for i in range(6)])
    s = build(name, sources, foreground=foreground)
    for i in range(8, 14):
        x = washer[i]['image'].to(device)
        aug, m = s(x, gen(i))
        assert aug.shape == x.shape and m.shape == (1, *x.shape[-2:])
        assert aug.dtype == m.dtype == torch.float32 and aug.device == m.device == x.device
        assert 0 <= aug.min() and aug.max() <= 1
        assert set(m.unique().tolist()) == {0.0, 1.0}, 'mask must be binary and non-empty'
        assert torch.equal(aug[:, m[0] == 0], x[:, m[0] == 0]), 'image changed outside the mask'
        assert (aug - x).abs().sum() > 0, 'the anomaly changed nothing'
        if foreground == 'auto':                               # the anomaly sits (at least partly) on the object
            assert (m * foreground_mask(x)).sum() > 0


@pytest.mark.parametrize('name', NAMES)
def test_seeds(name, washer):
    sources = torch.stack([washer[i]['image'] for i in range(6)])
    s, x = build(name, sources), washer[20]['image']
    a1, m1 = s(x, gen(5)); a2, m2 = s(x, gen(5)); a3, m3 = s(x, gen(6))
    assert torch.equal(a1, a2) and torch.equal(m1, m2)
    assert not (torch.equal(a1, a3) and torch.equal(m1, m3))


@pytest.mark.parametrize('hw', [(6, 6), (9, 17), (300, 40)])
@pytest.mark.parametrize('name', NAMES)
def test_small_and_odd_images(name, hw, washer):
    "Images smaller than the patch sizes (and odd shapes) still get a non-empty anomaly."
    x = F.interpolate(washer[3]['image'][None], size=hw, mode='bilinear')[0]
    s = build(name, torch.stack([washer[i]['image'] for i in range(4)]), foreground='auto')
    for seed in range(3):
        aug, m = s(x, gen(seed))
        assert aug.shape == (3, *hw) and m.sum() > 0 and torch.equal(aug[:, m[0] == 0], x[:, m[0] == 0])


@pytest.mark.skipif('cuda' not in DEVICES, reason='no CUDA device')
def test_cpu_and_gpu_agree(washer):
    "The same generator gives the same anomaly on either device (draws are made on the CPU)."
    x = washer[4]['image']
    for name in ['draem', 'simple_shape', 'texture_shape', 'cutpaste', 'cutpaste_scar']:
        s = make_synthesizer(name)
        (a, m), (ag, mg) = s(x, gen(1)), s(x.cuda(), gen(1))
        assert (m != mg.cpu()).float().mean() < 0.002, name
        assert (a - ag.cpu()).abs().mean() < 0.01, name


def test_perlin_mask_statistics():
    ms = torch.stack([perlin_mask(64, gen(i)) for i in range(100)])
    area = ms.mean((1, 2, 3))
    assert 0 < (area == 0).float().mean() < 0.3 and 0.01 < area[area > 0].mean() < 0.3


def test_dataset_reproducible_and_epochs(washer):
    ds = SynthesisDataset(washer, make_synthesizer('draem'), seed=3)
    a, b = ds[7], ds[7]
    assert torch.equal(a['augmented'], b['augmented']) and a['anomaly_mask'].sum() > 0
    assert set(a) == {'image', 'mask', 'label', 'defect', 'path', 'augmented', 'anomaly_mask'}
    ds.set_epoch(1)
    assert not torch.equal(ds[7]['augmented'], a['augmented'])
    assert not torch.equal(SynthesisDataset(washer, 'draem', seed=4)[7]['augmented'], a['augmented'])


def test_dataset_p_anomaly(washer):
    never = SynthesisDataset(washer, 'simple_shape', p_anomaly=0.0)
    it = never[0]
    assert torch.equal(it['augmented'], it['image']) and it['anomaly_mask'].sum() == 0
    always = SynthesisDataset(washer, 'simple_shape', p_anomaly=1.0)
    assert all(always[i]['anomaly_mask'].sum() > 0 for i in range(10))
    with pytest.raises(ValueError, match='p_anomaly'): SynthesisDataset(washer, 'draem', p_anomaly=2)


def test_dataset_workers_match_main_process(washer):
    "Items depend on (seed, index, epoch) only: two DataLoader workers give what the main process gives."
    ds = SynthesisDataset(washer, 'nsa', seed=1)              # nsa: gets its source images from the base set
    ds.set_epoch(2)
    dl = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    batch = next(iter(dl))
    ref = torch.stack([ds[i]['augmented'] for i in range(4)])
    assert torch.equal(batch['augmented'], ref)
    assert batch['anomaly_mask'].shape == (4, 1, 64, 64)


def test_bad_textures(tmp_path):
    with pytest.raises(DataError, match='missing_textures'): make_synthesizer('draem', textures=tmp_path/'missing_textures')
    (tmp_path/'readme.txt').write_text('no images')
    with pytest.raises(DataError, match=str(tmp_path)): make_synthesizer('simple_texture', textures=tmp_path)
    with pytest.raises(ValueError, match='unknown synthesis strategy'): make_synthesizer('perlin')
    with pytest.raises(ValueError, match='valid options'): make_synthesizer('cutpaste', area_ratio=0.1)
    with pytest.raises(ValueError, match='source_images'): make_synthesizer('nsa')(torch.rand(3, 32, 32), gen(0))
    with pytest.raises(ValueError, match=r'\(3,H,W\)'): make_synthesizer('draem')(torch.rand(32, 32), gen(0))


def test_texture_folder_lazy_and_cached(tmp_path):
    from daf_lite.core import save_image
    for i in range(3): save_image(procedural_texture((40, 30), gen(i)), tmp_path/'sub'/f't{i}.png')
    src = TextureSource(tmp_path)
    assert len(src) == 3 and not src._cache
    t = src.sample(64, gen(0))
    assert t.shape == (3, 64, 64) and len(src._cache) == 1
    aug, m = make_synthesizer('draem', textures=tmp_path)(torch.rand(3, 64, 64), gen(0))
    assert m.sum() > 0


def test_real_data(shared_data):
    "DTD textures on the MVTec bottle with the foreground switch on."
    bottle = MVTecDataset(shared_data/'mvtec_ad', 'bottle', 'train', image_size=128)
    fg = foreground_mask(bottle[0]['image'])
    assert 0.3 < fg.mean() < 0.95
    for name in ['draem', 'simple_texture', 'texture_shape']:
        ds = SynthesisDataset(bottle, make_synthesizer(name, textures=shared_data/'dtd_subset'/'images', foreground='auto'))
        it = ds[0]
        assert it['anomaly_mask'].sum() > 0 and torch.equal(it['augmented'][:, it['anomaly_mask'][0] == 0],
                                                             it['image'][:, it['anomaly_mask'][0] == 0])
