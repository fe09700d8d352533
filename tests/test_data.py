"Plain tests of daf_lite.data: the committed toy data, splits, items, the bad-input errors, other layouts."
import csv
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

import daf_lite.data as data
from daf_lite.core import DataError
from daf_lite.data import (TOY_CATEGORIES, TOY_DEFECTS, FolderDataset, MVTecDataset, carve_split, convert_visa,
                           list_categories, make_toy_dataset, make_toy_image, toy_root)

REPO_DATA = Path(__file__).resolve().parent.parent / 'data'


def _pngs(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob('*.png'))


# ---------------------------------------------------------------- the committed toy dataset
def test_toy_regenerates_bit_exactly(tmp_path):
    "make_toy_dataset(seed=0) rewrites data/ pixel for pixel (same files, same pixels, same modes)."
    make_toy_dataset(tmp_path)
    committed, fresh = _pngs(REPO_DATA), _pngs(tmp_path)
    assert committed == fresh, f'file lists differ: {sorted(set(committed) ^ set(fresh))[:10]}'
    differ = []
    for rel in committed:
        a, b = Image.open(REPO_DATA / rel), Image.open(tmp_path / rel)
        if a.mode != b.mode or a.size != b.size or not np.array_equal(np.asarray(a), np.asarray(b)): differ.append(rel)
    assert not differ, f'{len(differ)} committed files differ from a fresh generation, e.g. {differ[:5]}'


def test_toy_layout_counts_and_masks():
    assert toy_root() == REPO_DATA
    assert list_categories(REPO_DATA) == list(TOY_CATEGORIES)
    for cat in TOY_CATEGORIES:
        assert len(list((REPO_DATA / cat / 'train' / 'good').glob('*.png'))) == 60
        n_test = {d: len(list((REPO_DATA / cat / 'test' / d).glob('*.png'))) for d in ('good',) + TOY_DEFECTS}
        assert n_test == {'good': 15, 'scratch': 9, 'stain': 8, 'missing_piece': 8}
        for d in TOY_DEFECTS:
            for img in sorted((REPO_DATA / cat / 'test' / d).glob('*.png')):
                m = np.asarray(Image.open(REPO_DATA / cat / 'ground_truth' / d / f'{img.stem}_mask.png'))
                assert m.shape == (128, 128) and set(np.unique(m)) <= {0, 255}, img
                assert 0 < (m > 0).mean() < 0.1, f'{img}: defect area {(m > 0).mean():.3f} outside (0, 0.1)'
        x = np.asarray(Image.open(REPO_DATA / cat / 'train' / 'good' / '000.png'))
        assert x.shape == (128, 128, 3) and x.dtype == np.uint8


def test_toy_size_budget():
    total = sum(p.stat().st_size for p in REPO_DATA.rglob('*') if p.is_file())
    assert total < 3 * 2 ** 20, f'data/ is {total / 2 ** 20:.2f} MiB, the budget is 3 MiB'


def test_toy_normals_vary_and_defects_change_pixels():
    "Normal images differ from each other; a defect changes the pixels under its mask."
    for cat in TOY_CATEGORIES:
        imgs = [make_toy_image(cat, 'good', i, 'train')[0].astype(int) for i in range(6)]
        diffs = [np.abs(imgs[i] - imgs[j]).mean() for i in range(6) for j in range(i + 1, 6)]
        assert min(diffs) > 3, (cat, min(diffs))
        for d in TOY_DEFECTS:
            img, mask = make_toy_image(cat, d, 0)
            assert mask.any() and img.shape == (128, 128, 3)
    with pytest.raises(ValueError, match='toy categories'): make_toy_image('bottle')


def test_toy_root_falls_back_to_cache(tmp_path, monkeypatch):
    "Without the repo's data/, toy_root generates into the cache once (atomically) and reuses it."
    calls = []
    def fake_make(root, seed=0):
        calls.append(root); shutil.copytree(REPO_DATA, root, dirs_exist_ok=True); return Path(root)
    monkeypatch.setattr(data, '_bundled_toy', lambda: tmp_path / 'not_here')
    monkeypatch.setattr(data, 'make_toy_dataset', fake_make)
    with pytest.warns(UserWarning, match='generating it once'):
        r = toy_root(cache_dir=tmp_path / 'cache')
    assert r == tmp_path / 'cache' / 'toy' and (r / 'washer' / 'train' / 'good' / '059.png').is_file()
    assert toy_root(cache_dir=tmp_path / 'cache') == r and len(calls) == 1
    assert [p.name for p in (tmp_path / 'cache').iterdir()] == ['toy']          # no temporary folder left behind


# ---------------------------------------------------------------- splits and items
def test_splits_partition_train_good_only():
    tr, va, te = (MVTecDataset(REPO_DATA, 'tile', s, image_size=32) for s in ('train', 'val', 'test'))
    good = {str(p) for p in (REPO_DATA / 'tile' / 'train' / 'good').glob('*.png')}
    assert set(tr.paths) | set(va.paths) == good and not set(tr.paths) & set(va.paths)
    assert (len(tr), len(va), len(te)) == (54, 6, 40)
    assert not set(te.paths) & good and all('/test/' in p for p in te.paths)
    assert MVTecDataset(REPO_DATA, 'tile', 'val', seed=0).paths == va.paths                       # deterministic
    assert MVTecDataset(REPO_DATA, 'tile', 'val', seed=1).paths != va.paths                       # depends on the seed
    assert len(MVTecDataset(REPO_DATA, 'tile', 'val', val_fraction=0)) == 0
    assert len(MVTecDataset(REPO_DATA, 'tile', 'train', val_fraction=0)) == 60
    assert len(MVTecDataset(REPO_DATA, 'tile', 'val', val_fraction=0.25)) == 15
    assert tr.with_split('val').paths == va.paths


def test_carve_split_small_sets():
    fs = [Path(f'{i}.png') for i in range(3)]
    assert carve_split(fs[:1], 'train', 0.5) == fs[:1] and carve_split(fs[:1], 'val', 0.5) == []
    assert len(carve_split(fs, 'val', 0.9)) == 2 and len(carve_split(fs, 'train', 0.9)) == 1


@pytest.mark.parametrize('size,shape', [(64, (64, 64)), ((48, 80), (48, 80)), (None, (128, 128))])
def test_items_and_collate(size, shape):
    ds = MVTecDataset(REPO_DATA, 'washer', 'test', image_size=size)
    idx = [0, ds.defects.index('scratch'), ds.defects.index('stain'), ds.defects.index('missing_piece')]
    items = [ds[i] for i in idx]
    for it in items:
        assert list(it) == ['image', 'mask', 'label', 'defect', 'path']
        assert it['image'].shape == (3, *shape) and it['image'].dtype == torch.float32
        assert it['mask'].shape == (1, *shape) and it['mask'].dtype == torch.float32
        assert 0 <= it['image'].min() and it['image'].max() <= 1
        assert set(it['mask'].unique().tolist()) <= {0.0, 1.0}
    assert [it['label'] for it in items] == [0, 1, 1, 1]
    assert [it['defect'] for it in items] == ['good', 'scratch', 'stain', 'missing_piece']
    assert items[0]['mask'].sum() == 0 and items[1]['mask'].sum() > 0
    b = default_collate(items)
    assert b['image'].shape == (4, 3, *shape) and b['mask'].shape == (4, 1, *shape)
    assert b['label'].tolist() == [0, 1, 1, 1] and b['path'] == [it['path'] for it in items]


def test_mask_matches_file_at_native_size():
    ds = MVTecDataset(REPO_DATA, 'tile', 'test', image_size=None)
    i = ds.defects.index('stain')
    m = np.asarray(Image.open(REPO_DATA / 'tile' / 'ground_truth' / 'stain' / f'{Path(ds.paths[i]).stem}_mask.png')) > 0
    assert np.array_equal(ds[i]['mask'][0].numpy() > 0, m)


# ---------------------------------------------------------------- bad inputs: every message names the file
@pytest.fixture
def bad(tmp_path):
    "A writable copy of the toy washer under tmp_path/'mvtec'."
    shutil.copytree(REPO_DATA / 'washer', tmp_path / 'mvtec' / 'washer')
    return tmp_path / 'mvtec'


def test_error_root_missing(tmp_path):
    with pytest.raises(DataError, match='no_such_root.*not found'): MVTecDataset(tmp_path / 'no_such_root', 'washer')


def test_error_category_missing_lists_found(bad):
    with pytest.raises(DataError) as e: MVTecDataset(bad, 'bottle')
    assert "'bottle'" in str(e.value) and "['washer']" in str(e.value)
    with pytest.raises(DataError, match="category='washer'"): MVTecDataset(bad / 'washer', 'washer')   # root is a category


@pytest.mark.parametrize('split', ['train', 'val'])
def test_error_no_training_images(bad, split):
    for p in (bad / 'washer' / 'train' / 'good').iterdir(): p.unlink()
    with pytest.raises(DataError, match='washer/train/good: no training images'): MVTecDataset(bad, 'washer', split)
    assert len(MVTecDataset(bad, 'washer', 'test')) == 40     # the test split does not need them


def test_error_defective_image_without_mask(bad):
    (bad / 'washer' / 'ground_truth' / 'scratch' / '004_mask.png').unlink()
    with pytest.raises(DataError) as e: MVTecDataset(bad, 'washer', 'test')
    assert 'test/scratch/004.png' in str(e.value) and 'ground_truth/scratch/004_mask.png' in str(e.value)


def test_error_mask_size_mismatch_names_both(bad):
    Image.new('L', (100, 128)).save(bad / 'washer' / 'ground_truth' / 'stain' / '003_mask.png')
    ds = MVTecDataset(bad, 'washer', 'test')
    i = ds.paths.index(str(bad / 'washer' / 'test' / 'stain' / '003.png'))
    with pytest.raises(DataError) as e: ds[i]
    msg = str(e.value)
    assert 'ground_truth/stain/003_mask.png' in msg and 'test/stain/003.png' in msg and '100x128' in msg and '128x128' in msg
    ds[i - 1]                                                       # the others still load


@pytest.mark.parametrize('content', [b'', b'not a png at all', 'truncated'])
@pytest.mark.parametrize('where', ['train/good/007.png', 'test/good/002.png', 'test/stain/001.png'])
def test_error_corrupt_image_named(bad, content, where):
    p = bad / 'washer' / where
    p.write_bytes(p.read_bytes()[:300] if content == 'truncated' else content)
    split = 'test' if where.startswith('test') else 'train'
    ds = MVTecDataset(bad, 'washer', split, val_fraction=0)
    with pytest.raises(DataError) as e: ds[ds.paths.index(str(p))]
    assert where in str(e.value)


def test_error_corrupt_mask_named(bad):
    (bad / 'washer' / 'ground_truth' / 'stain' / '005_mask.png').write_bytes(b'')
    ds = MVTecDataset(bad, 'washer', 'test')
    with pytest.raises(DataError, match='stain/005_mask.png'): ds[ds.paths.index(str(bad / 'washer/test/stain/005.png'))]


def test_strays_skipped_with_one_warning(bad):
    for p in ['train/good/notes.txt', 'train/good/Thumbs.db', 'train/good/.DS_Store']: (bad / 'washer' / p).write_text('x')
    (bad / 'washer' / 'test' / 'stain' / 'readme.md').write_text('x')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        assert len(MVTecDataset(bad, 'washer', 'train', val_fraction=0)) == 60
        assert len(MVTecDataset(bad, 'washer', 'test')) == 40
    msgs = [str(x.message) for x in w]
    assert len(msgs) == 2, msgs                                       # one per dataset
    assert 'notes.txt' in msgs[0] and 'Thumbs.db' in msgs[0] and '.DS_Store' not in msgs[0]
    assert 'readme.md' in msgs[1]


@pytest.mark.parametrize('kw,name', [(dict(split='validation'), 'split'), (dict(val_fraction=1.0), 'val_fraction'),
                                     (dict(val_fraction=-0.1), 'val_fraction'), (dict(image_size=0), 'image_size'),
                                     (dict(image_size=(64,)), 'image_size')])
def test_bad_arguments_named(kw, name):
    with pytest.raises(ValueError, match=name): MVTecDataset(REPO_DATA, 'tile', **kw)


# ---------------------------------------------------------------- other layouts
def _as_mvtec3d(src: Path, dst: Path, n: int = 3) -> Path:
    for p in sorted((src / 'train' / 'good').glob('*.png'))[:n]:
        (dst / 'train/good/rgb').mkdir(parents=True, exist_ok=True); (dst / 'train/good/xyz').mkdir(exist_ok=True)
        shutil.copy(p, dst / 'train/good/rgb' / p.name)
        (dst / 'train/good/xyz' / (p.stem + '.tiff')).write_bytes(b'point cloud')
    for d in sorted((src / 'test').iterdir()):
        for p in sorted(d.glob('*.png'))[:n]:
            for sub in ('rgb', 'gt'): (dst / 'test' / d.name / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy(p, dst / 'test' / d.name / 'rgb' / p.name)
            m = src / 'ground_truth' / d.name / f'{p.stem}_mask.png'
            if m.exists(): shutil.copy(m, dst / 'test' / d.name / 'gt' / p.name)
            else: Image.new('L', (128, 128)).save(dst / 'test' / d.name / 'gt' / p.name)
    (dst / 'validation' / 'good' / 'rgb').mkdir(parents=True)
    return dst


def test_mvtec3d_rgb_layout(tmp_path):
    cat = _as_mvtec3d(REPO_DATA / 'tile', tmp_path / 'mvtec3d' / 'tile')
    te = MVTecDataset(tmp_path / 'mvtec3d', 'tile', 'test', image_size=64)
    assert te.layout == 'mvtec3d' and te.counts() == {'good': 3, 'missing_piece': 3, 'scratch': 3, 'stain': 3}
    i = te.defects.index('stain')
    it = te[i]
    assert it['label'] == 1 and it['mask'].sum() > 0 and it['path'].endswith('stain/rgb/000.png')
    assert te[0]['mask'].sum() == 0
    assert len(MVTecDataset(tmp_path / 'mvtec3d', 'tile', 'train', val_fraction=0)) == 3
    (cat / 'test' / 'scratch' / 'gt' / '001.png').unlink()
    with pytest.raises(DataError) as e: MVTecDataset(tmp_path / 'mvtec3d', 'tile', 'test')
    assert 'scratch/rgb/001.png' in str(e.value) and 'scratch/gt/001.png' in str(e.value)


def _fake_visa(root: Path, n: int = 2) -> Path:
    rows = [('object', 'split', 'label', 'image', 'mask')]
    for obj in ('candle', 'pcb1'):
        for i in range(3 * n):
            anomalous = i >= 2 * n
            img, mask = make_toy_image('tile', 'stain' if anomalous else 'good', i, 'test')
            name = f'{obj}/Data/Images/{"Anomaly" if anomalous else "Normal"}/{i:04d}.JPG'
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / name, 'JPEG', quality=90)
            mname = ''
            if anomalous:
                mname = f'{obj}/Data/Masks/Anomaly/{i:04d}.png'
                (root / mname).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask.astype(np.uint8)).save(root / mname)       # VisA masks are 0/1
            rows.append((obj, 'train' if i < n else 'test', 'anomaly' if anomalous else 'normal', name, mname))
    (root / 'split_csv').mkdir(parents=True)
    with open(root / 'split_csv' / '1cls.csv', 'w', newline='') as f: csv.writer(f).writerows(rows)
    return root


def test_convert_visa(tmp_path):
    src = _fake_visa(tmp_path / 'VisA')
    dst = convert_visa(src, tmp_path / 'out')
    assert list_categories(dst) == ['candle', 'pcb1']
    assert sorted(p.name for p in (dst / 'candle' / 'train' / 'good').iterdir()) == ['0000.JPG', '0001.JPG']
    assert sorted(p.name for p in (dst / 'candle' / 'test' / 'bad').iterdir()) == ['0004.JPG', '0005.JPG']
    m = np.asarray(Image.open(dst / 'candle' / 'ground_truth' / 'bad' / '0004_mask.png'))
    orig = np.asarray(Image.open(src / 'candle' / 'Data' / 'Masks' / 'Anomaly' / '0004.png'))
    assert set(np.unique(m)) == {0, 255} and np.array_equal(m > 0, orig > 0)
    te = MVTecDataset(dst, 'candle', 'test', image_size=64)
    assert te.counts() == {'good': 2, 'bad': 2} and sorted(te.labels) == [0, 0, 1, 1]
    assert len(MVTecDataset(dst, 'candle', 'train', val_fraction=0)) == 2
    only = convert_visa(src, tmp_path / 'only', objects=['pcb1'])
    assert list_categories(only) == ['pcb1']


def test_convert_visa_errors(tmp_path):
    with pytest.raises(DataError, match='1cls.csv'): convert_visa(tmp_path / 'nothing', tmp_path / 'out')
    src = _fake_visa(tmp_path / 'VisA')
    (src / 'candle' / 'Data' / 'Images' / 'Normal' / '0003.JPG').unlink()
    with pytest.raises(DataError, match=r'candle/Data/Images/Normal/0003.JPG.*line 5'): convert_visa(src, tmp_path / 'out')
    (src / 'split_csv' / '1cls.csv').write_text('object,split,image\ncandle,train,x.JPG\n')
    with pytest.raises(DataError, match=r"\['label', 'mask'\]"): convert_visa(src, tmp_path / 'out')


def test_folder_dataset(tmp_path):
    own = tmp_path / 'own'
    shutil.copytree(REPO_DATA / 'washer' / 'train' / 'good', own / 'good')
    shutil.copytree(REPO_DATA / 'washer' / 'test', own / 'test')
    shutil.copytree(REPO_DATA / 'washer' / 'ground_truth', own / 'masks')
    mv = {s: MVTecDataset(REPO_DATA, 'washer', s, image_size=32) for s in ('train', 'val', 'test')}
    for s in ('train', 'val'):
        f = FolderDataset(own / 'good', split=s, image_size=32)
        assert [Path(p).name for p in f.paths] == [Path(p).name for p in mv[s].paths]
    te = FolderDataset(own / 'good', own / 'test', own / 'masks', split='test', image_size=32)
    assert te.counts() == mv['test'].counts() and te.labels == mv['test'].labels
    assert torch.equal(te[30]['mask'], mv['test'][30]['mask'])
    assert len(te.with_split('train')) == 54
    # a flat test folder: a mask present in mask_dir makes an image anomalous
    flat, masks = tmp_path / 'flat', tmp_path / 'flat_masks'
    flat.mkdir(); masks.mkdir()
    shutil.copy(own / 'test' / 'good' / '000.png', flat / 'a.png')
    shutil.copy(own / 'test' / 'stain' / '000.png', flat / 'b.png')
    shutil.copy(own / 'masks' / 'stain' / '000_mask.png', masks / 'b.png')
    ft = FolderDataset(own / 'good', flat, masks, split='test')
    assert ft.labels == [0, 1] and ft.defects == ['good', 'defect'] and ft[1]['mask'].sum() > 0


def test_folder_dataset_errors(tmp_path):
    with pytest.raises(DataError, match='nowhere'): FolderDataset(tmp_path / 'nowhere')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DataError, match='empty: no training images'): FolderDataset(tmp_path / 'empty')
    with pytest.raises(DataError, match='test_dir'): FolderDataset(tmp_path / 'empty', split='test')
    (tmp_path / 'test' / 'dent').mkdir(parents=True)
    shutil.copy(REPO_DATA / 'tile' / 'test' / 'stain' / '000.png', tmp_path / 'test' / 'dent' / 'x17.png')
    with pytest.raises(DataError, match='dent/x17.png'): FolderDataset(tmp_path / 'empty', tmp_path / 'test', split='test')
    (tmp_path / 'masks' / 'dent').mkdir(parents=True)
    Image.new('L', (64, 64), 255).save(tmp_path / 'masks' / 'dent' / 'x17_mask.png')
    ds = FolderDataset(tmp_path / 'empty', tmp_path / 'test', tmp_path / 'masks', split='test')
    with pytest.raises(DataError, match='x17_mask.png.*x17.png'): ds[0]


# ---------------------------------------------------------------- real data (skips without ../shared/data)
def test_real_bottle(shared_data):
    te = MVTecDataset(shared_data / 'mvtec_ad', 'bottle', 'test', image_size=64)
    assert te.counts() == {'good': 20, 'broken_large': 20, 'broken_small': 22, 'contamination': 21}
    it = te[te.defects.index('contamination')]
    assert it['image'].shape == (3, 64, 64) and it['mask'].sum() > 0
    n = len(MVTecDataset(shared_data / 'mvtec_ad', 'bottle', 'train')) + len(MVTecDataset(shared_data / 'mvtec_ad', 'bottle', 'val'))
    assert n == 209
