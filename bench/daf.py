"""DAF speed and memory against the frozen-teacher floor, measured in the same run (resnet18, batch 8, 256², CPU).

usage: python bench/daf.py [threads=2] [repeats=5]

Prints, as ratios to the teacher's forward (layers 1-3, no autograd) on the same batch:
  * the training step (teacher + student + discrepancy + decoder + boosters, backward, AdamW step);
  * inference (eval forward: maps, scores and cues) and inference against our own teacher + student + decoder forward;
  * the balanced BCE with an unsorted top-k (ours) against the official sorted top-k, on the same losses;
and the peak resident memory of a process that only runs training steps (and one that only runs inference).
Timings are the minimum of interleaved repeats (the least disturbed by other processes on a shared machine);
compare ratios, not seconds.
"""
import os, sys, time, resource, subprocess, warnings
from pathlib import Path
import torch
from _timing import best_times                               # bench/_timing.py: interleaved best-of timer
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.simplefilter('ignore')
from daf_lite.daf import DAF, DAFConfig, balanced_bce
from daf_lite.teacher import FeatureExtractor

B, SIZE = 8, 256


def batch(seed: int = 0) -> dict:
    "A batch with rectangular synthetic defects (content does not change the cost)."
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, 3, SIZE, SIZE, generator=g)
    mask = torch.zeros(B, 1, SIZE, SIZE)
    for i in range(B):
        y0, x0 = torch.randint(0, SIZE - 80, (2,), generator=g).tolist()
        mask[i, :, y0:y0 + 40 + 5 * i, x0:x0 + 60] = 1
    return {'image': x, 'augmented': x * (1 - mask) + mask * torch.rand_like(x), 'anomaly_mask': mask}


def model() -> DAF:
    return DAF(DAFConfig.preset('paper', weights='random'))


def step_fn(m: DAF, b: dict):
    for mod in m.trainable(): mod.train()
    stage = m.stages()[0]                                        # the method's own optimiser (fused AdamW on CPU)
    opt = stage.optimizer(stage.parameters())
    def step():
        opt.zero_grad(set_to_none=True)
        m.loss(b)['loss'].backward()
        opt.step()
    return step


def sorted_topk_bce(logits, target, ratio=3.0, eps=1e-6):
    "The official selection: a sorted top-k over every pixel's (masked) loss, on sigmoid probabilities."
    p = torch.sigmoid(logits)
    loss = F.binary_cross_entropy(p, target, reduction='none')
    pos = (target > 0.5).float()
    n_pos = int(pos.sum()); n_neg = min(int((1 - pos).sum()), int(n_pos * ratio))
    neg = (loss * (1 - pos)).flatten().topk(n_neg).values
    return ((loss * pos).sum() + neg.sum()) / (n_pos + n_neg + eps)




def peak(mode: str, threads: int) -> float:
    "Peak RSS (GB) of a fresh process that runs 3 training steps or 3 inference batches."
    out = subprocess.run([sys.executable, __file__, str(threads), '0', mode], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(threads: int = 2, repeats: int = 5):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m, b = model(), batch()
    teacher = FeatureExtractor('resnet18', (1, 2, 3), weights='random', frozen=True)
    step = step_fn(m, b)
    x = b['image']

    def infer():
        m.eval(); m(x)

    with torch.no_grad():
        m.eval()
        ms, _ = m.discrepancy(m.teacher(x), m.student(x))
        cue = m.fusion(ms)

    def own_forward():                                            # teacher + student + decoder, no discrepancy / map
        with torch.no_grad():
            m.eval(); m.teacher(x); ss = m.student(x); m.decoder(cue, ss)

    def floor():
        with torch.no_grad(): teacher(x)

    logits = torch.randn(B, 1, SIZE, SIZE, requires_grad=True)
    t = best_times({'floor': floor, 'step': step, 'infer': infer, 'own_forward': own_forward,
                      'bce_ours': lambda: balanced_bce(logits, b['anomaly_mask']).backward(),
                      'bce_sorted_topk': lambda: sorted_topk_bce(logits, b['anomaly_mask']).backward()}, repeats)
    f = t['floor']
    print(f"DAF resnet18, batch {B}, {SIZE}², CPU, {threads} threads, best of {repeats} interleaved repeats")
    print(f"teacher forward (floor): {f * 1000:.0f} ms")
    print(f"training step:  {t['step'] / f:.2f}x floor   (target <= 8.5x; official 12.8-15.4x)")
    print(f"inference:      {t['infer'] / f:.2f}x floor   (target <= 4x; official 5.6-8.0x)")
    print(f"inference / own teacher+student+decoder forward: {t['infer'] / t['own_forward']:.2f}x (target <= 1.2x)")
    print(f"balanced BCE fwd+bwd: unsorted top-k {t['bce_ours'] / f:.3f}x floor, official sorted top-k "
          f"{t['bce_sorted_topk'] / f:.3f}x floor ({t['bce_sorted_topk'] / t['bce_ours']:.2f}x slower)")
    print(f"peak RSS: training {peak('peak-step', threads):.2f} GB (target < 2.5 GB; official ~3 GB), "
          f"inference {peak('peak-infer', threads):.2f} GB")


def peak_main(mode: str, threads: int):
    torch.set_num_threads(threads)
    m, b = model(), batch()
    if mode == 'peak-step':
        step = step_fn(m, b)
        for _ in range(3): step()
    else:
        m.eval()
        for _ in range(3): m(b['image'])
    status = Path('/proc/self/status')              # VmHWM: this process's own peak (ru_maxrss also counts the parent's
    if status.exists():                              # RSS at fork time, so it would report the bench's own size)
        kb = next(int(l.split()[1]) for l in status.read_text().splitlines() if l.startswith('VmHWM:'))
        print(kb / 2**20)
    else: print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


if __name__ == '__main__':
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    if len(sys.argv) > 3: peak_main(sys.argv[3], threads)
    else: main(threads, int(sys.argv[2]) if len(sys.argv) > 2 else 5)
