"Headless checks of daf_lite.explore: overlay pixels, scales, the Explorer's widgets and figure, save_report's files."
import json
import warnings

import numpy as np
import pytest
import torch

warnings.simplefilter('ignore', UserWarning)

S = 64                                         # image size of the in-memory dataset


class Data:
    "An AnomalyDataset look-alike: 3 normal and 3 defective 64x64 images; a defect is the square [16:32, 16:32]."
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(6, 3, S, S, generator=g) * 0.2 + 0.4
        self.masks = torch.zeros(6, 1, S, S)
        self.masks[3:, :, 16:32, 16:32] = 1
        self.labels = [0, 0, 0, 1, 1, 1]
        self.defects = ['good'] * 3 + ['scratch', 'stain', 'scratch']
        self.paths = [f'/data/{i:03d}.png' for i in range(6)]
        self.reads = 0

    def __len__(self): return 6

    def __getitem__(self, i):
        self.reads += 1
        return {'image': self.images[i], 'mask': self.masks[i], 'label': self.labels[i], 'defect': self.defects[i],
                'path': self.paths[i]}


def known_maps(data):
    "Defect images: 1.0 on the mask, 0.6 on a 4-px ring around it ([12:36]), 0.1 elsewhere; normals: a low ramp."
    n = len(data)
    maps = torch.full((n, 1, S, S), 0.1)
    for i in range(n):
        if data.labels[i]:
            maps[i, :, 12:36, 12:36] = 0.6
            maps[i, :, 16:32, 16:32] = 1.0 - 0.01 * i          # distinct scores
        else:
            maps[i, 0] += torch.linspace(0, 0.1 + 0.05 * i, S)[None, :]   # normal: max 0.2 .. 0.3, a gradient
    return maps


class FakeDetector:
    "The detector interface: predict (counted), evaluate (metrics.evaluate), threshold, map_scale, method."
    method = 'fake'

    def __init__(self, threshold=0.5, map_scale=(0.1, 0.5)):
        self.threshold, self.map_scale, self.calls = threshold, map_scale, 0

    def predict(self, data):
        from daf_lite.core import Prediction
        self.calls += 1
        maps = known_maps(data)
        scores = maps.flatten(1).max(1).values
        cues = {'layer1': maps * 2, 'segmentation': torch.stack([data[i]['mask'] for i in range(len(data))])}
        return Prediction(maps, scores, (scores >= self.threshold).long(), self.threshold, cues, list(data.paths))

    def evaluate(self, data, prediction=None):
        from daf_lite.metrics import evaluate
        p = prediction if prediction is not None else self.predict(data)
        masks = torch.stack([data[i]['mask'] for i in range(len(data))])
        return evaluate(p.maps, p.scores, masks, data.labels, data.defects)


@pytest.fixture
def setup():
    from daf_lite.explore import Explorer
    data, det = Data(), FakeDetector()
    return Explorer(det, data), det, data


# ------------------------------------------------------------------ plotting functions
def test_overlay_values_and_outlines():
    from daf_lite.explore import overlay, colormap_lut, GT_COLOUR, PRED_COLOUR
    data = Data()
    amap = known_maps(data)[3]
    img = torch.full((3, S, S), 0.5)
    o = overlay(img, amap, data.masks[3], alpha=0.4, cmap='viridis', vmin=0.1, vmax=1.0, threshold=0.5)
    lut = colormap_lut('viridis')
    np.testing.assert_allclose(o[24, 24], 0.6 * 0.5 + 0.4 * lut[int(255 * (0.97 - 0.1) / 0.9 + 0.5)], atol=1e-6)
    np.testing.assert_allclose(o[60, 60], 0.6 * 0.5 + 0.4 * lut[0], atol=1e-6)      # 0.1 = vmin: the lowest colour
    np.testing.assert_array_equal(o[16, 20], GT_COLOUR)       # the mask's rim
    np.testing.assert_array_equal(o[31, 31], GT_COLOUR)
    np.testing.assert_array_equal(o[12, 20], PRED_COLOUR)     # the rim of map >= 0.5 (the ring's outer edge)
    assert not np.isin(o[20:28, 20:28].reshape(-1, 3).tolist(), [list(GT_COLOUR)]).all()   # inside: heatmap only
    rim = (o == np.array(GT_COLOUR, np.float32)).all(-1)
    assert rim.sum() == 16 * 4 - 4                            # exactly the square's 1-px outline


def test_overlay_resizes_map_and_validates():
    from daf_lite.explore import overlay
    from daf_lite.core import DataError
    small = torch.zeros(1, 8, 8); small[:, 4:, :] = 1          # bottom half high
    o = overlay(torch.zeros(3, 32, 32), small, alpha=1.0, cmap='gray')
    assert o.shape == (32, 32, 3) and o[0, 0, 0] < 0.05 and o[31, 0, 0] > 0.95
    with pytest.raises(DataError, match='expected one map'):
        overlay(torch.zeros(3, 8, 8), torch.zeros(2, 8, 8))


def test_scales_documented_difference():
    "Per-image scaling puts every normal image's hottest pixel at the top colour; the dataset scale keeps it low."
    from daf_lite.explore import scale_map, normal_map_scale
    data = Data()
    maps = known_maps(data)
    lo, hi = normal_map_scale(maps[:3])
    np.testing.assert_allclose((lo + hi) / 2, np.quantile(maps[:3].numpy(), 0.999), rtol=1e-5)
    np.testing.assert_allclose(lo, np.quantile(maps[:3].numpy(), 0.5), rtol=1e-5)
    for i in range(3):                                        # normal images
        assert scale_map(maps[i], 'image')[0].max() == 1.0
        assert scale_map(maps[i], (lo, hi))[0].max() <= 0.5 + 1e-6
    for i in range(3, 6):                                     # defects reach the top on either scale
        assert scale_map(maps[i], (lo, hi))[0].max() == 1.0
        assert scale_map(maps[i], 'image')[0].max() == 1.0


def test_plot_grid_colorbars():
    import matplotlib.pyplot as plt
    from daf_lite.explore import plot_grid
    data = Data()
    maps = known_maps(data)
    fig = plot_grid(data.images, maps, data.masks, maps.flatten(1).amax(1), data.defects, scale='image')
    assert len(fig.axes) == 12                                # 6 panels + 6 colour bars
    assert fig.axes[0].get_title().startswith('good\nscore')
    plt.close(fig)
    fig = plot_grid(data.images, maps, scale=(0.1, 0.5), ncols=3)
    assert len(fig.axes) == 7 and fig.axes[-1].get_ylim() == (0.1, 0.5)
    plt.close(fig)
    with pytest.raises(ValueError, match='scale'):
        plot_grid(data.images, maps, scale='dataset')


def test_mask_iou_and_histogram():
    import matplotlib.pyplot as plt
    from daf_lite.explore import mask_iou, score_histogram, _line
    a = np.zeros((8, 8)); a[:4] = 1
    b = np.zeros((8, 8)); b[2:6] = 1
    assert mask_iou(a, b) == 16 / 48 and mask_iou(0 * a, 0 * a) == 1.0 and mask_iou(a, 0 * a) == 0.0
    ax = score_histogram([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1], current=0.8, threshold=0.5)
    assert _line(ax, 'current').get_xdata()[0] == 0.8 and _line(ax, 'threshold').get_xdata()[0] == 0.5
    assert sum(p.get_height() for p in ax.patches) == 4
    plt.close(ax.figure)


# ------------------------------------------------------------------ the explorer, headless
def test_explorer_predicts_once_and_caches(setup):
    ex, det, data = setup
    assert det.calls == 1
    reads = data.reads
    w = ex.widgets
    for t in (0.3, 0.5, 0.7, 0.9): w['threshold'].value = t
    w['alpha'].value = 0.2; w['cmap'].value = 'viridis'; w['scale'].value = 'image'
    w['cue'].value = 'layer1'; w['cue'].value = 'segmentation'; w['cue'].value = 'map'
    w['image'].value = 4; w['image'].value = 0; w['image'].value = 4
    assert det.calls == 1                                     # no model call for any control
    assert data.reads - reads == 1                            # image 4 read once; then image 0 and 4 from the cache
    assert ex.redraws >= 13
    assert w['histogram_view'].value[:4] == b'\x89PNG'
    assert all(w[k].value[:2] == b'\xff\xd8' for k in ('overlay_view', 'binary_view', 'colorbar_view'))   # JPEG


def test_explorer_iou_at_known_thresholds(setup):
    ex, det, data = setup
    ex.widgets['image'].value = 3
    ex.widgets['threshold'].value = 0.5                       # predicted: the 24x24 ring+square; truth: 16x16
    assert ex.state['iou'] == pytest.approx(256 / 576) and ex.state['predicted_pixels'] == 576
    assert 'IoU 0.44' in ex.widgets['binary_title'].value
    ex.widgets['threshold'].value = 0.8
    assert ex.state['iou'] == 1.0
    ex.widgets['image'].value = 0                             # a normal image: at 0.8 nothing found, nothing to find
    assert ex.state['iou'] == 1.0 and ex.state['predicted_pixels'] == 0
    ex.widgets['threshold'].value = 0.15
    assert ex.state['iou'] == 0.0 and ex.state['predicted_pixels'] > 0


def test_explorer_figure_data(setup):
    from daf_lite.explore import GT_COLOUR, PRED_COLOUR, colormap_lut
    ex, det, data = setup
    ex.set(image=3, cue='map', scale='dataset', threshold=0.5, cmap='jet', alpha=0.5)
    shown = ex.images['overlay']
    np.testing.assert_array_equal(shown[16, 20], GT_COLOUR)
    np.testing.assert_array_equal(shown[12, 20], PRED_COLOUR)
    img = data.images[3].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(shown[24, 24], 0.5 * img[24, 24] + 0.5 * colormap_lut('jet')[255], atol=1e-6)  # clipped hot
    assert (ex.state['vmin'], ex.state['vmax']) == (0.1, 0.5)
    np.testing.assert_allclose(ex.images['colorbar'][0, 0], colormap_lut('jet')[255])   # top of the bar: hi
    labels = ex.widgets['colorbar_labels'].value
    assert labels.index('>0.5<') < labels.index('>0.3<') < labels.index('>0.1<')      # hi on top, lo at the bottom
    binary = ex.images['binary']
    np.testing.assert_allclose(binary[24, 24], (1.0, 0.85, 0.0))   # hit
    np.testing.assert_array_equal(binary[13, 20], PRED_COLOUR)      # false alarm on the ring
    ex.set(cmap='viridis')
    np.testing.assert_allclose(ex.images['colorbar'][-1, 0], colormap_lut('viridis')[0])


def test_explorer_scales(setup):
    ex, det, data = setup
    ex.set(image=0, cue='map', scale='image')
    top = lambda: ex.images['overlay']
    a = top().copy()
    assert (ex.state['vmin'], ex.state['vmax']) == pytest.approx((0.1, 0.2))   # the normal image's own range
    ex.set(scale='dataset')
    assert (ex.state['vmin'], ex.state['vmax']) == (0.1, 0.5)                  # the detector's map_scale
    b = top()
    img = data.images[0].permute(1, 2, 0).numpy()
    heat = lambda o: (o - 0.5 * img) / 0.5                                      # the colour the map got
    from daf_lite.explore import colormap_lut
    red = colormap_lut('jet')[255]
    assert np.abs(heat(a) - red).max(-1).min() < 1e-5                           # per image: the top colour appears
    assert np.abs(heat(b) - red).max(-1).min() > 0.3                            # dataset scale: nowhere near it
    ex.set(cue='layer1')                                                        # cues: scale from this set's normals
    assert ex.state['vmin'] == pytest.approx(float(np.quantile(2 * known_maps(data)[:3].numpy(), 0.5)), rel=1e-5)


def test_explorer_threshold_per_cue(setup):
    ex, det, data = setup
    t = ex.widgets['threshold']
    assert t.value == 0.5 and (t.min, t.max) == pytest.approx((0.1, 0.97))    # the detector's threshold; map range
    t.value = 0.7
    ex.widgets['cue'].value = 'layer1'
    assert (t.min, t.max) == pytest.approx((0.2, 1.94))
    assert t.value == pytest.approx(sum(ex.scale_of('layer1')) / 2)           # a cue's default: its mid-scale
    ex.widgets['cue'].value = 'map'
    assert t.value == 0.7                                                       # remembered per cue
    from daf_lite.explore import Explorer
    ex2 = Explorer(FakeDetector(threshold=5.0), data)                           # above every pixel: the range widens
    assert ex2.widgets['threshold'].value == 5.0 and ex2.widgets['threshold'].max == 5.0
    assert ex2.state['predicted_pixels'] == 0


def test_explorer_list_order_and_buttons(setup):
    ex, det, data = setup
    w = ex.widgets
    assert [v for _, v in w['image'].options] == list(range(6))
    w['defect'].value = 'scratch'
    assert [v for _, v in w['image'].options] == [3, 5] and ex.state['defect'] == 'scratch'
    w['defect'].value = 'all'; w['order'].value = 'score_desc'
    scores = known_maps(data).flatten(1).max(1).values.numpy()
    assert [v for _, v in w['image'].options] == np.argsort(-scores, kind='stable').tolist()
    w['order'].value = 'score_asc'
    assert [v for _, v in w['image'].options] == np.argsort(scores, kind='stable').tolist()
    listed = [v for _, v in w['image'].options]
    w['image'].value = listed[0]
    w['next'].click()
    assert ex.state['index'] == listed[1]
    w['prev'].click(); w['prev'].click()                                      # wraps around to the last
    assert ex.state['index'] == listed[-1]


def test_explorer_histogram_marks_current(setup):
    ex, det, data = setup
    for i in (0, 4):
        ex.widgets['image'].value = i
        assert ex.artists['current'].get_xdata()[0] == pytest.approx(float(known_maps(data)[i].max()))
    hist = ex.hist_ax
    assert sum(p.get_height() for p in hist.patches) == 6
    assert any(l.get_gid() == 'threshold' and l.get_xdata()[0] == 0.5 for l in hist.lines)


def test_explorer_set_and_errors(setup):
    from daf_lite.explore import Explorer
    from daf_lite.core import DataError
    ex, det, data = setup
    n = ex.redraws
    ex.set(image=5, cue='segmentation', threshold=0.5, scale='image', alpha=0.3)
    assert ex.redraws == n + 1                                                  # one redraw for all of it
    s = ex.state
    assert (s['index'], s['cue'], s['threshold'], s['scale'], s['alpha'], s['iou']) == (5, 'segmentation', 0.5, 'image', 0.3, 1.0)
    with pytest.raises(ValueError, match='no control'):
        ex.set(colour='red')
    p = det.predict(data)
    with pytest.raises(DataError, match='data has 6'):
        Explorer(None, Data(), prediction=p[:3])
    with pytest.raises(ValueError, match='detector'):
        Explorer(None, Data())
    ex2 = Explorer(None, Data(), prediction=p)                                   # no detector: threshold from prediction
    assert ex2.widgets['threshold'].value == 0.5 and ex2.state['vmax'] > ex2.state['vmin']


def test_explorer_on_toy_dataset():
    "The real dataset class: its keys and sizes; maps at another size than the images are resized to them."
    from daf_lite.core import Prediction
    from daf_lite.data import MVTecDataset, toy_root
    from daf_lite.explore import Explorer
    ds = MVTecDataset(toy_root(), 'washer', split='test', image_size=48)
    masks = torch.stack([ds[i]['mask'] for i in range(len(ds))])
    maps = torch.nn.functional.interpolate(masks, size=(32, 32), mode='bilinear', align_corners=False)
    p = Prediction(maps, maps.flatten(1).amax(1))
    ex = Explorer(None, ds, prediction=p, threshold=0.5)
    i = ds.defects.index('stain')
    ex.set(image=i, cue='map', threshold=0.5)
    assert ex.state['iou'] > 0.6 and ex.images['overlay'].shape == (48, 48, 3)


# ------------------------------------------------------------------ the report
def test_save_report(tmp_path):
    from daf_lite.explore import save_report, rank_cases
    from daf_lite.metrics import evaluate
    data, det = Data(), FakeDetector()
    p = det.predict(data)
    paths = save_report(det, data, tmp_path / 'rep', prediction=p, n_cases=2)
    assert det.calls == 1                                                      # the given prediction was used
    out = tmp_path / 'rep'
    assert paths['metrics'] == out / 'metrics.json'
    names = sorted(q.name for q in out.iterdir())
    assert names == ['best_cases.png', 'cases', 'curves.png', 'histogram.png', 'metrics.json', 'worst_cases.png']
    assert len(list((out / 'cases').iterdir())) == 8 == len(paths['cases'])
    assert not list(out.rglob('*.tmp'))
    for k in ('curves', 'histogram', 'best', 'worst'):
        assert paths[k].read_bytes()[:4] == b'\x89PNG'
    rep = json.loads(paths['metrics'].read_text())
    ref = evaluate(p.maps, p.scores, data.masks, data.labels, data.defects)
    assert rep['image_AUROC'] == pytest.approx(ref['image_AUROC']) and rep['pixel_AUPRO'] == pytest.approx(ref['pixel_AUPRO'])
    assert rep['method'] == 'fake' and rep['threshold'] == 0.5 and rep['map_scale'] == [0.1, 0.5]
    assert [r['score'] for r in rep['images']] == pytest.approx(p.scores.tolist())
    assert set(rep['per_defect']) == {'scratch', 'stain'}
    cases = rank_cases(p.scores, data.labels, 2)
    assert cases == {'anomalous_best': [3, 4], 'normal_best': [0, 1], 'anomalous_worst': [5, 4], 'normal_worst': [2, 1]}
    assert any(q.name.startswith('worst_anomalous_1_0005_scratch') for q in (out / 'cases').iterdir())
    save_report(det, data, out, prediction=p, n_cases=1)                     # again, fewer cases: no stale overlays
    assert len(list((out / 'cases').iterdir())) == 4


def test_save_report_without_detector_and_nan(tmp_path):
    "No detector: metrics.evaluate directly, the map scale from the normal images; undefined metrics are JSON null."
    from daf_lite.explore import save_report, normal_map_scale
    data = Data()
    p = FakeDetector().predict(data)
    paths = save_report(None, data, tmp_path, prediction=p)
    rep = json.loads(paths['metrics'].read_text())
    assert rep['method'] == '' and rep['map_scale'] == pytest.approx(list(normal_map_scale(p.maps[:3])))

    class Normals(Data):                                                       # one class only: AUROC undefined
        def __init__(self):
            super().__init__()
            self.labels, self.defects, self.masks = [0] * 6, ['good'] * 6, torch.zeros(6, 1, S, S)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        paths = save_report(None, Normals(), tmp_path / 'n', prediction=p)
    text = paths['metrics'].read_text()
    assert 'NaN' not in text and json.loads(text)['image_AUROC'] is None


def test_explorer_redraws_only_what_changed(setup):
    "A threshold move re-sends the two panels only; the colour bar and histogram re-render when their content changes."
    import matplotlib.pyplot as plt
    ex, det, data = setup
    w = ex.widgets
    hist, cbar, ov = w['histogram_view'].value, w['colorbar_labels'].value, w['overlay_view'].value
    w['threshold'].value = 0.15                               # image 0 (normal, max 0.2): now an outline appears
    assert w['histogram_view'].value is hist and w['colorbar_labels'].value is cbar and w['overlay_view'].value != ov
    w['scale'].value = 'image'
    assert w['colorbar_labels'].value != cbar and w['histogram_view'].value is hist
    bar = w['colorbar_view'].value
    w['cmap'].value = 'gray'
    assert w['colorbar_view'].value != bar
    w['image'].value = 4
    assert w['histogram_view'].value != hist
    fig = ex.snapshot()
    assert len(fig.axes) == 4 and 'IoU' in fig.axes[1].get_title()
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), ex.images['overlay'])
    plt.close(fig)


def test_every_registered_method(tmp_path):
    "Any registered method's eval output (untrained, or fitted in one pass if training-free) drives the explorer."
    import dataclasses
    from daf_lite.core import Prediction, load_methods
    from daf_lite.explore import Explorer, save_report
    data = Data()
    x = data.images
    methods = load_methods()
    assert {'daf', 'rd4ad', 'aand'} <= set(methods)
    for name, spec in sorted(methods.items()):
        fields = {f.name for f in dataclasses.fields(spec.config_cls)}
        over = {k: v for k, v in dict(weights='random', image_size=S).items() if k in fields}
        torch.manual_seed(0)
        model = spec.model_cls(spec.config_cls.preset('tiny', **over))
        for st in model.stages():
            if st.fit_pass is not None:
                with torch.no_grad(): st.fit_pass([{'image': x, 'mask': data.masks}])
        with torch.no_grad(): out = model.eval()(x)
        p = Prediction(out['maps'], out['scores'], cues=out.get('cues', {}))
        ex = Explorer(None, data, prediction=p)
        for cue in ex.maps:
            for scale in ('image', 'dataset'):
                ex.set(cue=cue, scale=scale, image=4)
                st = ex.state
                assert st['cue'] == cue and st['vmax'] > st['vmin'] and 0 <= st['iou'] <= 1, (name, cue, st)
        if name == 'aand':                                     # the report only reads maps and scores: one method
            assert save_report(None, data, tmp_path, prediction=p, n_cases=1)['metrics'].is_file()
