"""Hand-edited or damaged config.json files: each is refused with one DataError that names the file, the field, its value
and what was expected — never a TypeError, KeyError or AttributeError from deep inside."""
import json, shutil

import pytest

from daf_lite.core import DataError
from daf_lite.data import toy_root
from daf_lite.detector import Detector


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp('run') / 'padim'
    Detector('padim', image_size=64).fit(toy_root() / 'tile', progress=False).save(d)
    return d


def _set(meta, where, value):
    *path, last = where.split('.')
    for p in path: meta = meta[p]
    if value is KeyError: del meta[last]
    else: meta[last] = value


CASES = [  # (field path in config.json, value written, words the error must contain)
    ('format_version', '2', "field 'format_version' is '2'; expected an integer"),
    ('checkpoint_id', KeyError, "field 'checkpoint_id' is missing"),
    ('files', [1], "field 'files' is [1]"),
    ('files', {'model.safetensors': 'big'}, "expected an object of file name -> size"),
    ('extra.detector.threshold', 'high', "extra.detector.threshold is 'high'; expected a number or null"),
    ('extra.detector.map_scale', [1], 'extra.detector.map_scale is [1]'),
    ('extra.detector.fitted', 'yes', 'extra.detector.fitted'),
    ('extra.detector.method', KeyError, 'extra.detector.method is missing'),
    ('config.image_size', -5, 'image_size=-5; expected a positive integer'),
    ('config.image_size', 'abc', "image_size='abc' (str); expected a number"),
    ('config.layers', 3, 'layers=3 (int); expected a list'),
]


@pytest.mark.parametrize('where,value,words', CASES, ids=[f'{w}={v!r}' for w, v, _ in CASES])
def test_hand_edited_config_is_a_clear_error(saved, tmp_path, where, value, words):
    run = tmp_path / 'run'
    shutil.copytree(saved, run)
    meta = json.loads((run / 'config.json').read_text())
    _set(meta, where, value)
    (run / 'config.json').write_text(json.dumps(meta))
    with pytest.raises(DataError) as e:
        Detector.load(run)
    assert str(run / 'config.json') in str(e.value) and words in str(e.value), str(e.value)


def test_the_untouched_folder_still_loads(saved):
    d = Detector.load(saved)
    assert d.method == 'padim' and d.threshold is not None and len(d.map_scale) == 2
