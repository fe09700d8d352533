"""Teacher forward time, contiguous vs channels_last, batch 8 at 256² (CPU, 2 threads by default); prints ratios.

Also each teacher's time relative to the default EfficientNet-Lite0 in the same run (channels_last for both), and
its multiply-adds (torch.utils.flop_counter). Weights are random: speed does not depend on them."""
import sys, time, torch
from pathlib import Path
from torch.utils.flop_counter import FlopCounterMode
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from daf_lite.teacher import FeatureExtractor

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
x = torch.rand(8, 3, 256, 256)
best = {}
for name in ['efficientnet_lite0', 'resnet18', 'wide_resnet50_2']:
    ms = {cl: FeatureExtractor(name, weights='random', channels_last=cl) for cl in (False, True)}
    for m in ms.values(): m(x)
    ts = {False: [], True: []}
    for _ in range(5):                      # interleaved, so load from other processes hits both alike
        for cl, m in ms.items(): t0 = time.perf_counter(); m(x); ts[cl].append(time.perf_counter() - t0)
    med = {cl: sorted(v)[len(v) // 2] for cl, v in ts.items()}
    with FlopCounterMode(display=False) as fc: ms[True](x[:1])
    best[name] = med[True]
    print(f'{name}: contiguous {med[False]:.3f} s, channels_last {med[True]:.3f} s, '
          f'speed-up {med[False] / med[True]:.2f}x (median of 5, {torch.get_num_threads()} threads); '
          f'{fc.get_total_flops() / 2e9:.2f} G multiply-adds per 256² image; '
          f"{med[True] / best['efficientnet_lite0']:.2f}x the Lite0's time")
