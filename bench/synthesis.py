"""Synthesis speed: images/s per strategy at 256x256 on one CPU thread, against a proxy of one DAF training step.

usage: python bench/synthesis.py [n_images]   (default 60 per strategy)

The step proxy is a resnet18 forward + backward (random weights) on a batch of 8 at 256x256 with 2 threads, timed in
the same run, so the ratio survives a noisy, shared machine. A real DAF step also runs the frozen teacher and the
discrepancy/segmentation heads (DESIGN.md: ~13-15x a teacher forward), so the proxy *under*-states the step cost and
the verdict is conservative. With W DataLoader workers synthesis keeps up when W x images/s >= step images/s.
"""
import sys, time
from pathlib import Path
import torch, torchvision
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from daf_lite.synthesis import SYNTHESIZERS, make_synthesizer, procedural_texture

N = int(sys.argv[1]) if len(sys.argv) > 1 else 60
SIZE, WORKERS = 256, 2
DTD = Path(__file__).resolve().parent.parent.parent / 'shared' / 'data' / 'dtd_subset' / 'images'
g = torch.Generator().manual_seed(0)
images = torch.stack([procedural_texture(SIZE, g) * 0.5 + 0.25 for _ in range(16)])   # stand-in normal images


def rate(fn, n=N) -> float:
    "Images per second of fn(image, generator) over n calls (after 3 warm-up calls)."
    gen = torch.Generator().manual_seed(1)
    for i in range(3): fn(images[i % 16], gen)
    t0 = time.perf_counter()
    for i in range(n): fn(images[i % 16], gen)
    return n / (time.perf_counter() - t0)


# 1. the DAF step proxy: resnet18 fwd + bwd, batch 8, 2 threads
torch.set_num_threads(2)
net = torchvision.models.resnet18(weights=None)
x = torch.rand(8, 3, SIZE, SIZE)
opt = torch.optim.SGD(net.parameters(), lr=1e-3)
def step():
    opt.zero_grad(); net(x).sum().backward(); opt.step()
step()
ts = []
for _ in range(3):
    t0 = time.perf_counter(); step(); ts.append(time.perf_counter() - t0)
step_s = sorted(ts)[1]
step_ips = 8 / step_s

# 2. synthesis, one thread
torch.set_num_threads(1)
rows = []
for name in SYNTHESIZERS:
    variants = [('procedural', {})]
    if SYNTHESIZERS[name].uses_textures and DTD.is_dir(): variants.append(('DTD', {'textures': str(DTD)}))
    if name == 'nsa': variants = [('16 images in memory', {'source_images': images})]
    for label, opts in variants:
        s = make_synthesizer(name, **opts)
        if label == 'DTD':                                   # fill the texture cache first (a one-off per worker)
            for i in range(len(s.textures)): s.textures._get(i, (SIZE, SIZE))
        rows.append((name, label, rate(s)))
    if name == 'simple_texture': rows.append((name, "procedural, foreground='auto'", rate(make_synthesizer(name, foreground='auto'))))

print(f'DAF step proxy (resnet18 fwd+bwd, batch 8, {SIZE}px, 2 threads): {step_s * 1e3:.0f} ms/step = {step_ips:.1f} images/s')
print(f'synthesis at {SIZE}x{SIZE}, 1 thread, {N} images each; "x step" = synthesis images/s / step images/s '
      f'(>= {1 / WORKERS:.2f} means {WORKERS} workers keep up)')
print(f'{"strategy":15s} {"textures":30s} {"images/s":>9s} {"ms/image":>9s} {"x step":>7s}  verdict')
for name, label, ips in rows:
    ok = 'ok' if WORKERS * ips >= step_ips else 'LIMITS TRAINING'
    tgt = '' if ips >= 100 else f'  (below 100/s target: {100 / ips:.1f}x short)'
    print(f'{name:15s} {label:30s} {ips:9.0f} {1e3 / ips:9.1f} {ips / step_ips:7.1f}  {ok}{tgt}')
