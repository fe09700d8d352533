"""Execute chapters of nbs/ headless on the CPU and store their outputs in the notebooks, as a learner should see them.

usage: python tests/store_outputs.py [NB ...] [--workers 2]      (default: every chapter; then run `nbdev_clean`)

Each chapter runs top to bottom in its own Jupyter kernel (working directory nbs/, one torch thread, tqdm off,
matplotlib's inline figures, stored as 256-colour PNGs), exactly the cells the tests run: `#| slow` cells,
`#| eval: false` cells and the `nbdev_export()` call are not executed and keep no output. Figures, tables,
printed metrics and each `expect(...)` line are stored; `tests/test_notebooks.py` re-runs every chapter and
compares its `expect` figures with the stored ones, so stored outputs cannot drift from the code unnoticed.
Chapters run `--workers` at a time.
"""
import argparse, concurrent.futures as cf, os, re, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / 'nbs'


def chapters() -> list[Path]:
    "Every chapter in reading order: the on-ramp `index.ipynb`, then nbs/[0-9]*.ipynb."
    return [NBS / 'index.ipynb'] + sorted(NBS.glob('[0-9]*.ipynb'))


def skipped(source: str) -> bool:
    "Whether the tests skip this code cell: `#| slow`, `#| eval: false`, or the export call."
    head = [l.strip() for l in source.splitlines() if l.strip().startswith('#|')]
    return ('nbdev_export' + '(' in source or any(re.match(r'#\|\s*slow\b', l) for l in head)
            or any(re.match(r'#\|\s*eval:\s*false', l, re.I) for l in head))


def small_png(b64: str) -> str:
    "A stored figure as a 256-colour PNG (dithered, optimised): about half the bytes, no visible change in a plot."
    import base64, io
    from PIL import Image
    raw = base64.b64decode(b64)
    buf = io.BytesIO()
    Image.open(io.BytesIO(raw)).convert('RGB').quantize(256, dither=Image.Dither.FLOYDSTEINBERG).save(buf, 'PNG', optimize=True)
    return base64.b64encode(buf.getvalue()).decode() if buf.tell() < len(raw) else b64


def store(path: Path) -> float:
    "Run chapter `path` in a fresh kernel and write it back with its outputs; the seconds it took."
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=1800, kernel_name='python3', allow_errors=False,
                            resources={'metadata': {'path': str(path.parent)}})
    t0 = time.time()
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != 'code': continue
            if skipped(cell.source): cell.outputs, cell.execution_count = [], None; continue
            client.execute_cell(cell, i)
            for o in cell.outputs:            # the drawn figure is enough: drop the widget model references
                if o.get('output_type') in ('display_data', 'execute_result'):
                    o.data.pop('application/vnd.jupyter.widget-view+json', None)
                    if 'image/png' in o.data: o.data['image/png'] = small_png(o.data['image/png'])
    nb.metadata.pop('widgets', None)
    nbformat.write(nb, path)
    return time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('notebooks', nargs='*', help='chapters to run (default: nbs/index.ipynb and every nbs/[0-9]*.ipynb)')
    ap.add_argument('--workers', type=int, default=2)
    a = ap.parse_args()
    paths = [Path(p).resolve() for p in a.notebooks] or chapters()
    for p in paths:
        if not p.is_file(): raise SystemExit(f'{p}: no such notebook')
    os.environ.update(OMP_NUM_THREADS='1', TQDM_DISABLE='1', PYTHONHASHSEED='0')
    os.environ.pop('MPLBACKEND', None)              # the kernel's inline backend, so figures are stored
    failed = 0
    with cf.ProcessPoolExecutor(a.workers) as ex:
        for p, f in [(p, ex.submit(store, p)) for p in paths]:
            try: print(f'{p.name}: {f.result():.0f} s', flush=True)
            except Exception as e: failed += 1; print(f'{p.name}: FAILED {type(e).__name__}: {str(e)[-2000:]}', flush=True)
    if failed: sys.exit(f'{failed} chapter(s) failed; their outputs were not written')
    print('now run `nbdev_clean` to normalise the notebooks')


if __name__ == '__main__':
    main()
