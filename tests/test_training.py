"The training loop beyond its chapter: DataLoader workers, per-epoch synthesis, schedulers, AMP, damaged checkpoints."
import warnings
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from daf_lite.core import Config, DataError, seed_everything
from daf_lite.synthesis import make_synthesizer
from daf_lite.training import AnomalyModel, Stage, fit, load_checkpoint, read_checkpoint_meta


class Images(Dataset):
    def __init__(self, n=10, size=16, seed=0):
        self.x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return {'image': self.x[i], 'label': 0, 'path': f'{i}.png'}


@dataclass
class NetConfig(Config):
    epochs: int = 2
    clip: float | None = None
    PRESETS = {'tiny': {}}


class Net(AnomalyModel):
    "A stand-in with batch norm, dropout, a synthetic stage and a scheduler."
    def __init__(self, config=None):
        super().__init__()
        self.config = config or NetConfig()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3),
                                  nn.Conv2d(4, 1, 1))
        self.seen = {}                                  # training: path -> anomaly pixels, one entry per epoch

    def loss(self, b):
        if self.training:
            for p, m in zip(b['path'], b['anomaly_mask']): self.seen.setdefault(p, []).append(m.sum().item())
        return {'loss': F.binary_cross_entropy_with_logits(self.body(b['augmented']), b['anomaly_mask'])}

    def stages(self):
        return [Stage('seg', self.loss, epochs=self.config.epochs, batch_size=4, data='synthetic',
                      synthesizer=make_synthesizer('simple_shape'), grad_clip=self.config.clip,
                      optimizer=lambda ps: torch.optim.SGD(ps, lr=0.1),
                      scheduler=lambda opt, n: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / n))]

    def forward(self, x):
        m = torch.sigmoid(self.body(x))
        return {'maps': m, 'scores': m.flatten(1).amax(1)}


def train(seed=0, **kw):
    seed_everything(7); m = Net(kw.pop('config', None))
    return m, fit(m, Images(), Images(4, seed=1), seed=seed, progress=False, **kw)


def test_workers_give_the_same_run():
    "Loading in 2 worker processes gives exactly the losses of loading in-process (seeded order and synthesis)."
    _, h0 = train()
    _, h2 = train(num_workers=2)
    assert h0.losses == h2.losses and h0.val_losses == h2.val_losses


def test_synthetic_anomalies_change_every_epoch():
    "set_epoch is called: epoch 2 draws other anomalies than epoch 1 for the same images."
    m, h = train()
    assert len(h.losses['seg']) == 4                   # 10 images, batch 4, drop_last: 2 steps x 2 epochs
    twice = [v for v in m.seen.values() if len(v) == 2]
    assert len(twice) >= 6 and sum(a != b for a, b in twice) >= len(twice) - 1


def test_scheduler_runs_over_the_stage():
    "The scheduler gets the stage's total steps and is stepped once per optimiser step."
    seen = {}
    class Sched(torch.optim.lr_scheduler.LambdaLR):
        def __init__(self, opt, n):
            seen['total'] = n; super().__init__(opt, lambda s: 1.0)
        def step(self, *a):
            seen['steps'] = seen.get('steps', -1) + 1; super().step(*a)
    m = Net()
    st = m.stages()[0]; st.scheduler = Sched
    m.stages = lambda: [st]
    fit(m, Images(), progress=False)
    assert seen['total'] == 4 and seen['steps'] == 4


def test_grad_clip_and_cpu_autocast_run():
    "grad_clip and forced bf16 autocast on the CPU run and give finite losses."
    _, h = train(config=NetConfig(clip=0.01), amp=True)
    assert all(torch.isfinite(torch.tensor(h.losses['seg'])))


def test_resume_from_a_damaged_checkpoint_names_the_file(tmp_path):
    _, h = train(ckpt_dir=tmp_path, max_steps=1)
    assert read_checkpoint_meta(tmp_path)['extra']['training']['step'] == 1
    f = tmp_path / 'optimizer.pt'
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(DataError, match='optimizer.pt'): train(ckpt_dir=tmp_path, resume=True)
    (tmp_path / 'model.safetensors').write_bytes(b'')
    with pytest.raises(DataError, match='model.safetensors'): load_checkpoint(tmp_path, Net())


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    "resume=True with an empty folder says so and trains from scratch (the same as without ckpt_dir)."
    _, h0 = train()
    with pytest.warns(UserWarning, match='nothing to resume'): _, h1 = train(ckpt_dir=tmp_path / 'new', resume=True)
    assert h0.losses == h1.losses
    assert read_checkpoint_meta(tmp_path / 'new')['extra']['training']['stage'] == 1


def test_resume_a_finished_run_does_nothing(tmp_path):
    m0, h0 = train(ckpt_dir=tmp_path)
    m1, h1 = train(ckpt_dir=tmp_path, resume=True)
    assert h1.losses == h0.losses
    assert all(torch.equal(a, b) for a, b in zip(m0.state_dict().values(), m1.state_dict().values()))


def test_empty_and_nan():
    with pytest.raises(DataError, match='empty'): fit(Net(), Images(0), progress=False)
    bad = Images(); bad.x[:, 0, 0, 0] = float('nan')
    with pytest.raises(FloatingPointError, match='step'): fit(Net(), bad, progress=False)
