"Test-time anomaly map cost (batch 8, 256², resnet18 layers 1-3), as multiples of the teacher forward in the same run."
import sys, time, warnings, torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from daf_lite.teacher import FeatureExtractor
from daf_lite.discrepancy import anomaly_map

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
with warnings.catch_warnings():
    warnings.simplefilter('ignore'); net = FeatureExtractor('resnet18', weights='auto')
x = torch.rand(8, 3, 256, 256)
ts = net(x); ss = [t + 0.1 * torch.rand_like(t) for t in ts]
jobs = {'teacher forward': lambda: net(x), 'map cos': lambda: anomaly_map(ts, ss, 256, 'cos'),
        'map cos+ssim': lambda: anomaly_map(ts, ss, 256, 'cos+ssim')}
times = {k: [] for k in jobs}
for _ in range(5):
    for k, f in jobs.items(): t0 = time.perf_counter(); f(); times[k].append(time.perf_counter() - t0)
med = {k: sorted(v)[2] for k, v in times.items()}
for k, v in med.items(): print(f'{k}: {v * 1000:.0f} ms ({v / med["teacher forward"]:.2f}x teacher)')
