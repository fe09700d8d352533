import os
from pathlib import Path

import pytest

os.environ.setdefault('MPLBACKEND', 'Agg')
if os.environ.get('PYTEST_XDIST_WORKER'):     # one thread per worker: two workers share two cores without oversubscribing
    os.environ.setdefault('OMP_NUM_THREADS', '1')  # (inherited by the CLI tests' subprocesses)
    import torch
    torch.set_num_threads(1)
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / 'shared' / 'data'


@pytest.fixture
def shared_data():
    "../shared/data (MVTec bottle, DTD subset) or a clean skip where it is absent."
    if not (SHARED_DATA / 'mvtec_ad' / 'bottle').is_dir(): pytest.skip(f'real data not found at {SHARED_DATA}')
    return SHARED_DATA
