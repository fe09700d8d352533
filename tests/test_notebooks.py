"""Run every chapter in nbs/ as one pytest test, with nbdev's own notebook runner, and check its stored outputs.

Each chapter is stored with its outputs (`python tests/store_outputs.py` refreshes them). Every `expect(...)` figure a
fresh run prints must match the one stored in the chapter within the tolerance stated beside it, and every stored
figure of a cell that ran must be printed again: what a reader sees without running the chapter is what it computes.
"""
import importlib.util, json, os, re
from pathlib import Path

import pytest

SLOW = os.environ.get('DAF_LITE_SLOW') == '1'
_spec = importlib.util.spec_from_file_location('store_outputs', Path(__file__).parent / 'store_outputs.py')
store_outputs = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(store_outputs)
NBS = store_outputs.chapters()
LINE = re.compile(r'^(\S+) = (\S+)   \(expect (\S+) ± (\S+)\)$', re.M)


def stored_expectations(nb: Path) -> dict[str, tuple[float, float, bool]]:
    "name -> (stored value, tolerance, whether its cell is slow) for every `expect` line stored in chapter `nb`."
    out = {}
    for cell in json.loads(nb.read_text())['cells']:
        if cell['cell_type'] != 'code': continue
        src = ''.join(cell['source'])
        text = ''.join(''.join(o.get('text', '')) for o in cell.get('outputs', []) if o.get('output_type') == 'stream')
        for name, v, _, tol in LINE.findall(text): out[name] = (float(v), float(tol), store_outputs.skipped(src))
    return out


@pytest.mark.parametrize('nb', NBS, ids=[p.stem for p in NBS])
def test_notebook(nb, monkeypatch):
    "Execute `nb` top to bottom (`#| slow` cells only with DAF_LITE_SLOW=1), then compare its figures with the stored ones."
    from nbdev.test import test_nb
    from daf_lite.core import EXPECTED
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    monkeypatch.setenv('TQDM_DISABLE', '1')
    EXPECTED.clear()
    ok, secs = test_nb(nb, skip_flags=[] if SLOW else ['slow'], force_flags=['slow'] if SLOW else [], showerr=True)
    assert ok, f'{nb.name} failed (see the captured output above for the cell and its traceback)'
    fresh, stored = dict(EXPECTED), stored_expectations(nb)
    refresh = f'refresh the stored outputs with `python tests/store_outputs.py nbs/{nb.name}` and `nbdev_clean`'
    missing = [] if SLOW else sorted(set(fresh) - set(stored))     # (slow cells are stored without outputs)
    assert not missing, f'{nb.name}: {missing} printed but not stored; {refresh}'
    gone = sorted(k for k, (_, _, slow) in stored.items() if k not in fresh and not slow)
    assert not gone, f'{nb.name}: stored figures {gone} were not printed by the run; {refresh}'
    drift = {k: (stored[k][0], v) for k, v in fresh.items() if k in stored and not abs(v - stored[k][0]) <= stored[k][1]}
    assert not drift, f'{nb.name}: stored vs fresh figures differ beyond their tolerance {drift}; {refresh}'


def test_every_chapter_is_stored_with_outputs():
    "A reader on GitHub sees every chapter's figures and numbers before running anything."
    bare = [nb.name for nb in NBS if not any(c.get('outputs') for c in json.loads(nb.read_text())['cells']
                                             if c['cell_type'] == 'code')]
    assert not bare, f'chapters without stored outputs: {bare}; run `python tests/store_outputs.py` and `nbdev_clean`'
