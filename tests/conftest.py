import os
from pathlib import Path

import pytest

os.environ.setdefault('MPLBACKEND', 'Agg')
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / 'shared' / 'data'


@pytest.fixture
def shared_data():
    "../shared/data (MVTec bottle, DTD subset) or a clean skip where it is absent."
    if not (SHARED_DATA / 'mvtec_ad' / 'bottle').is_dir(): pytest.skip(f'real data not found at {SHARED_DATA}')
    return SHARED_DATA
