"""Bad inputs and lost work, as a careful user meets them: a full disk, a kill between checkpoints, a resume on other
data, a stopped run, stale temporaries, odd folders and masks, tiny images, unfitted detectors, arrays and lists.
Each test fails on the behaviour before the reliability issue was fixed."""
import json, os, resource, signal, stat, subprocess, time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from daf_lite import cli
from daf_lite.core import load_image, load_mask
from daf_lite.data import MVTecDataset, toy_root
from daf_lite.detector import Detector
from test_cli import EXE, daf_lite, one_line_error

TRAIN = ('train', '--data', toy_root(), '--category', 'tile', '--method', 'rd4ad', '--image-size', '64', '--quiet')


def _step(out: Path) -> int:
    "The training position saved in OUT/checkpoint (-1: none yet)."
    try: return json.loads((out / 'checkpoint' / 'config.json').read_text())['extra']['training']['step']
    except (OSError, ValueError, KeyError): return -1


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a / 'model.safetensors'), load_file(b / 'model.safetensors')
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_sigkill_between_checkpoints_then_resume_is_bitwise_exact(tmp_path):
    "--checkpoint-every 4: a SIGKILLed `daf-lite train` resumes mid-epoch and ends with the uninterrupted weights."
    full, killed = tmp_path / 'full', tmp_path / 'killed'
    args = (*TRAIN, '--steps', '24', '--checkpoint-every', '4')
    r = daf_lite(*args, '--out', full)
    assert r.returncode == 0, r.stderr
    env = {**os.environ, 'TQDM_DISABLE': '1'}
    p = subprocess.Popen([str(EXE), *map(str, args), '--out', str(killed)], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while _step(killed) < 8 and p.poll() is None and time.time() - t0 < 300: time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    at = _step(killed)
    assert 8 <= at < 24 and at % 4 == 0, at                     # killed after a mid-stage checkpoint, before the end
    assert not (killed / 'model.safetensors').exists()          # the final save never happened
    r = daf_lite(*args, '--out', killed, '--resume')
    assert r.returncode == 0, r.stderr
    assert _same_weights(full, killed)
    h = json.loads((killed / 'config.json').read_text())['extra']['detector']['history']
    assert len(h['losses']['distill']) == 24 and not h['stopped_early']


def test_resume_says_when_there_is_nothing_to_resume(tmp_path):
    r = daf_lite(*TRAIN, '--steps', '2', '--out', tmp_path / 'o', '--resume')
    assert r.returncode == 0, r.stderr
    assert 'nothing to resume' in r.stderr and 'training from step 0' in r.stderr, r.stderr


def test_resume_on_other_data_is_refused(tmp_path):
    out = tmp_path / 'o'
    assert daf_lite(*TRAIN, '--steps', '3', '--max-time', '0', '--out', out).returncode == 0
    other = [a if a != 'tile' else 'washer' for a in TRAIN]
    line = one_line_error(daf_lite(*other, '--steps', '3', '--out', out, '--resume'), 'trained on other data')
    assert "category 'tile', now 'washer'" in line and '--force' in line, line


def test_max_time_says_and_records_that_it_stopped_early(tmp_path):
    out = tmp_path / 'o'
    r = daf_lite(*TRAIN, '--steps', '30', '--max-time', '0', '--out', out)
    assert r.returncode == 0, r.stderr
    assert 'PARTLY TRAINED: stopped early at step 1 of 30' in r.stdout, r.stdout
    assert 'only partly trained' in r.stderr, r.stderr
    h = json.loads((out / 'config.json').read_text())['extra']['detector']['history']
    assert h['stopped_at'] == {'stage': 'distill', 'step': 1, 'steps': 30, 'reason': 'max_time'}


def test_stale_temporaries_are_cleaned_and_files_get_the_usual_mode(tmp_path):
    out = tmp_path / 'o'
    assert daf_lite(*TRAIN, '--steps', '2', '--max-time', '0', '--out', out).returncode == 0
    p = subprocess.Popen(['true']); p.wait()                  # a pid that has exited: its temporaries are stale
    stale = out / 'checkpoint' / f'.model.safetensors.{p.pid}.abc123.tmp'
    stale.write_bytes(b'\0' * (3 << 20))
    r = daf_lite(*TRAIN, '--steps', '2', '--out', out, '--resume')
    assert r.returncode == 0, r.stderr
    assert not stale.exists() and 'removed 1 temporary file(s) (3.0 MiB)' in r.stdout, r.stdout
    umask = os.umask(0); os.umask(umask)
    for f in ('model.safetensors', 'config.json', 'checkpoint/model.safetensors', 'checkpoint/optimizer.pt'):
        assert stat.S_IMODE((out / f).stat().st_mode) == 0o666 & ~umask, f   # safetensors' own writer made 0600


def test_full_disk_at_save_is_one_line_naming_the_file(tmp_path):
    Detector('rd4ad', image_size=64)                          # the converted teacher weights are cached beforehand
    def small_files():                                       # a file-size limit fails writes as a full disk does
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    out = tmp_path / 'o'
    env = {**os.environ, 'TQDM_DISABLE': '1'}; env.pop('DAF_LITE_DEBUG', None)
    r = subprocess.run([str(EXE), *map(str, TRAIN), '--steps', '1', '--out', str(out)], env=env, capture_output=True,
                       text=True, preexec_fn=small_files, timeout=600)
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in r.stderr, r.stderr
    assert 'model.safetensors: no room to write it' in lines[0] and 'MiB' in lines[0], lines[0]
    assert not [p for p in out.rglob('*.tmp')]                # nothing half-written left behind


def test_bad_checkpoint_every_is_one_line(tmp_path):
    one_line_error(daf_lite(*TRAIN, '--checkpoint-every', 'often', '--out', tmp_path / 'o'), "checkpoint_every='often'")
    one_line_error(daf_lite(*TRAIN, '--checkpoint-every', '0', '--out', tmp_path / 'o'), 'positive')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp('run') / 'rd4ad'
    assert daf_lite(*TRAIN, '--steps', '2', '--out', out).returncode == 0
    return out


def test_predict_on_a_folder_lists_like_training(trained, tmp_path):
    imgs = tmp_path / 'imgs'; imgs.mkdir()
    src = sorted((toy_root() / 'tile' / 'test' / 'good').glob('*.png'))[:2]
    for s in src: (imgs / s.name).write_bytes(s.read_bytes())
    (imgs / f'._{src[0].name}').write_bytes(b'\0\0mac')                  # macOS metadata twin
    (imgs / 'dir.png').mkdir()                                          # a folder with an image's name
    (imgs / 'gone.png').symlink_to(imgs / 'nowhere.png')                 # a broken link
    r = daf_lite('predict', trained, imgs, '--out', tmp_path / 'p')
    assert r.returncode == 0, r.stderr
    rows = (tmp_path / 'p' / 'scores.csv').read_text().splitlines()[1:]
    assert sorted(Path(row.split(',')[0]).name for row in rows) == [s.name for s in src], rows


def test_tiny_image_is_upscaled_with_a_warning(trained, tmp_path):
    Image.new('RGB', (1, 1), (120, 30, 200)).save(tmp_path / 'dot.png')
    r = daf_lite('predict', trained, tmp_path / 'dot.png', '--out', tmp_path / 'p')
    assert r.returncode == 0 and 'dot.png: 1x1 px is upscaled 64x' in r.stderr, r.stderr


def test_non_binary_mask_warns_once_naming_the_file(tmp_path):
    root = tmp_path / 'data'; cat = root / 'tile'
    for sub in ('train/good', 'test/good', 'test/stain', 'ground_truth/stain'): (cat / sub).mkdir(parents=True)
    src = toy_root() / 'tile'
    for f in sorted((src / 'train' / 'good').glob('*.png'))[:3]: (cat / 'train/good' / f.name).write_bytes(f.read_bytes())
    img = sorted((src / 'test' / 'stain').glob('*.png'))[0]
    (cat / 'test/stain' / img.name).write_bytes(img.read_bytes())
    w, h = Image.open(img).size
    Image.fromarray(np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))).save(
        cat / 'ground_truth/stain' / f'{img.stem}_mask.png')               # a 0..255 gradient, not a 0/255 mask
    ds = MVTecDataset(root, 'tile', 'test', image_size=32)
    with pytest.warns(UserWarning, match=r'_mask.png: the mask is not binary .* every pixel above 0') as rec:
        ds.masks(); ds[0]; ds.masks()
    assert sum('not binary' in str(x.message) for x in rec) == 1


def test_unfitted_detectors_are_consistent():
    x = torch.rand(2, 3, 64, 64)
    with pytest.warns(UserWarning, match=r"Detector\('rd4ad'\) is not fitted: call .fit"):
        Detector('rd4ad', image_size=64).predict(x)
    with pytest.raises(RuntimeError, match=r"Detector\('padim'\) is not fitted: call .fit"):
        Detector('padim', image_size=64).predict(x)


def test_predict_takes_arrays_and_lists_and_names_what_it_takes(trained):
    det = Detector.load(trained)
    imgs = [load_image(p, 64) for p in sorted((toy_root() / 'tile' / 'test' / 'good').glob('*.png'))[:2]]
    ref = det.predict(torch.stack(imgs)).scores
    arrays = [(t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for t in imgs]
    torch.testing.assert_close(det.predict(imgs).scores, ref)                         # a list of tensors
    torch.testing.assert_close(det.predict(np.stack(arrays)).scores, ref, atol=2e-2, rtol=0)   # NHWC uint8
    torch.testing.assert_close(det.predict([arrays[0], imgs[1]]).scores, ref, atol=2e-2, rtol=0)
    for bad in (None, 3.5, [1, 2]):
        with pytest.raises(TypeError, match='expected a dataset, an image tensor'): det.predict(bad)


def test_every_option_has_help():
    "argparse prints no help for an option without one: every option of every command says what it does."
    sub = next(a for a in cli._parser()._actions if a.dest == 'command')
    missing = [f'{name} {"/".join(act.option_strings) or act.dest}' for name, p in sub.choices.items()
               for act in p._actions if not act.help and act.dest != 'help']
    assert not missing, missing
