"Run every chapter in nbs/ as one pytest test, with nbdev's own notebook runner."
import os
from pathlib import Path

import pytest

NBS = sorted((Path(__file__).resolve().parent.parent / 'nbs').glob('[0-9]*.ipynb'))
SLOW = os.environ.get('DAF_LITE_SLOW') == '1'


@pytest.mark.parametrize('nb', NBS, ids=[p.stem for p in NBS])
def test_notebook(nb, monkeypatch):
    "Execute `nb` top to bottom; `#| slow` cells run only with DAF_LITE_SLOW=1."
    from nbdev.test import test_nb
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    monkeypatch.setenv('TQDM_DISABLE', '1')
    ok, secs = test_nb(nb, skip_flags=[] if SLOW else ['slow'], force_flags=['slow'] if SLOW else [], showerr=True)
    assert ok, f'{nb.name} failed (see the captured output above for the cell and its traceback)'
