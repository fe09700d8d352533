"""The `paper` presets follow the papers' data recipe or say loudly where they cannot, and no stage is skipped silently."""
import warnings

import pytest

from daf_lite.aand import AAND, AANDConfig
from daf_lite.amplification import AmplificationConfig
from daf_lite.daf import DAF, DAFConfig
from daf_lite.gnl import GNL, GNLConfig
from daf_lite.synthesis import PAPER_TEXTURES, PaperRecipeWarning, make_synthesizer


@pytest.mark.parametrize('cfg', [DAFConfig, AmplificationConfig, AANDConfig, GNLConfig])
def test_paper_presets_ask_for_dtd(cfg):
    assert cfg.preset('paper').textures == PAPER_TEXTURES
    assert cfg.preset('tiny').textures is None                      # the tiny presets stay procedural and quiet


def test_aand_paper_preset_uses_object_masks():
    "The official AAND multiplies Perlin anomalies by the object mask and samples normal positions from it."
    assert AANDConfig.preset('paper').foreground == 'auto' and AmplificationConfig.preset('paper').foreground == 'auto'


def test_paper_textures_warn_without_dtd(monkeypatch, tmp_path):
    monkeypatch.delenv('DAF_LITE_TEXTURES', raising=False)
    with pytest.warns(PaperRecipeWarning, match='--textures DIR'):
        assert make_synthesizer('draem', textures='dtd').textures.files is None
    with pytest.warns(PaperRecipeWarning):                          # through a method's training stages
        DAF(DAFConfig.preset('paper', weights='random', image_size=64)).stages()
    from daf_lite.core import save_image
    import torch
    save_image(torch.rand(3, 16, 16), tmp_path / 'dtd.png')
    monkeypatch.setenv('DAF_LITE_TEXTURES', str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter('error', PaperRecipeWarning)
        assert make_synthesizer('draem', textures='dtd').textures.files == [tmp_path / 'dtd.png']


def test_gnl_paper_textures_reach_its_synthesis(monkeypatch):
    monkeypatch.delenv('DAF_LITE_TEXTURES', raising=False)
    with pytest.warns(PaperRecipeWarning):
        GNL(GNLConfig.preset('paper', weights='random', image_size=64, backbone='resnet18')).stages()


def test_aand_without_stage1_budget_warns_unless_branches_are_loaded():
    cfg = dict(weights='random', image_size=64, steps_stage1=0)
    with pytest.warns(UserWarning, match='RAA branches stay untrained'):
        names = [s.name for s in AAND(AANDConfig.preset('tiny', **cfg)).stages()]
    assert names == ['distill']
    trained = AAND(AANDConfig.preset('tiny', **cfg))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        m = AAND(AANDConfig.preset('tiny', **cfg)); m.amplifiers.load_state_dict(trained.amplifiers.state_dict())
        assert [s.name for s in m.stages()] == ['distill']
        assert [s.name for s in AAND(AANDConfig.preset('tiny', amplify=False, **cfg)).stages()] == ['distill']
        assert [s.name for s in AAND(AANDConfig.preset('tiny', weights='random', image_size=64)).stages()] == \
            ['amplify', 'distill']
