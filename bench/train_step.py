"""RD4AD speed and memory against the frozen-teacher floor, measured in the same run (wide_resnet50_2, batch 8, 256², CPU).

usage: python bench/train_step.py [threads=2] [repeats=5]

For the default glibc malloc and for MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 (each in a fresh process)
prints, as ratios to the teacher's forward (layers 1-3, no autograd) on the same batch:
  * one training step (teacher under no_grad + OCBE + decoder, global cosine loss, backward, Adam step);
  * the official code's structure for that step, in the same process: the teacher NCHW and under autograd (RD4AD's
    main.py never turns its gradients off, so backward also computes the teacher's weight gradients), same student;
  * inference (eval forward: maps, scores, cues) against the floor and against our own teacher + student forward;
and the peak resident memory of a fresh process that only runs training steps (and one that only runs inference).
Timings are the minimum of interleaved repeats (the least disturbed by other processes on a shared machine);
compare ratios, not seconds.
"""
import os, sys, time, resource, subprocess, warnings
from pathlib import Path
import torch
from _timing import best_times                               # bench/_timing.py: interleaved best-of timer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.simplefilter('ignore')
from daf_lite.rd import RD4AD, RD4ADConfig
from daf_lite.teacher import Teacher, FeatureExtractor
from daf_lite.discrepancy import cosine_loss

B, SIZE = 8, 256
TUNED = {'MALLOC_MMAP_MAX_': '0', 'MALLOC_TRIM_THRESHOLD_': '68719476736'}


def model() -> RD4AD:
    return RD4AD(RD4ADConfig.preset('paper', weights='random'))


def step_fn(m: RD4AD, x: torch.Tensor):
    stage = m.stages()[0]                                         # the method's own optimiser and parameters
    opt = stage.optimizer(stage.parameters())
    for mod in m.trainable(): mod.train()
    def step():
        opt.zero_grad(set_to_none=True)
        m.loss({'image': x})['loss'].backward()
        opt.step()
    return step


def official_step_fn(m: RD4AD, x: torch.Tensor):
    "The official step's structure: an NCHW teacher whose parameters require gradients, in eval mode."
    t = FeatureExtractor('wide_resnet50_2', (1, 2, 3), weights='random', frozen=False, channels_last=False).eval()
    stage = m.stages()[0]
    opt = stage.optimizer(stage.parameters())
    def step():
        opt.zero_grad(set_to_none=True)
        for mod in m.trainable(): mod.train()
        ts = t(x)                                                  # under autograd
        cosine_loss(ts, m.student(ts)).backward()
        opt.step()
    return step


def run(mode: str, threads: int, repeats: int, tuned: bool) -> str:
    env = {**os.environ, **(TUNED if tuned else {})}
    out = subprocess.run([sys.executable, __file__, str(threads), str(repeats), mode], capture_output=True, text=True,
                         env=env)
    if out.returncode: raise RuntimeError(out.stderr[-2000:])
    return out.stdout.strip().splitlines()[-1]


def timing_main(threads: int, repeats: int):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m, x = model(), torch.rand(B, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    floor_teacher = Teacher('wide_resnet50_2', (1, 2, 3), weights='random')
    step = step_fn(m, x)

    def floor():
        with torch.no_grad(): floor_teacher(x)

    def infer():
        m.eval(); m(x)

    def own_forward():                                             # teacher + student, no maps
        with torch.no_grad():
            m.eval(); m.student(m.teacher(x))

    official = official_step_fn(m, x)
    t = best_times({'floor': floor, 'step': step, 'official': official, 'infer': infer, 'own': own_forward}, repeats)
    f = t['floor']
    print(f"{f * 1000:.0f} {t['step'] / f:.3f} {t['infer'] / f:.3f} {t['infer'] / t['own']:.3f} {t['own'] / f:.3f} "
          f"{t['official'] / f:.3f}")


def peak_main(mode: str, threads: int):
    torch.set_num_threads(threads)
    m, x = model(), torch.rand(B, 3, SIZE, SIZE)
    if mode == 'peak-step':
        step = step_fn(m, x)
        for _ in range(3): step()
    else:
        m.eval()
        for _ in range(3): m(x)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


def main(threads: int = 2, repeats: int = 5):
    print(f"RD4AD wide_resnet50_2 (paper preset, random weights), batch {B}, {SIZE}², CPU, {threads} threads, "
          f"best of {repeats} interleaved repeats; ratios to the frozen teacher's forward in the same process")
    for tuned in (False, True):
        name = 'MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2^36' if tuned else 'default malloc'
        f, step, infer, vs_own, own, official = map(float, run('time', threads, repeats, tuned).split())
        ps, pi = float(run('peak-step', threads, 0, tuned)), float(run('peak-infer', threads, 0, tuned))
        print(f"[{name}] teacher forward (floor): {f:.0f} ms")
        print(f"[{name}] training step: {step:.2f}x floor (target <= 4.5x; its multiply-accumulates alone are 5.61x, "
              f"bench/aand.py); the official structure {official:.2f}x, {official / step:.2f}x slower than ours")
        print(f"[{name}] inference: {infer:.2f}x floor (target <= 2x); {vs_own:.2f}x our teacher+student forward "
              f"(target <= 1.2x; that forward is {own:.2f}x floor)")
        print(f"[{name}] peak RSS: training {ps:.2f} GB (target < 4 GB), inference {pi:.2f} GB")


if __name__ == '__main__':
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    mode = sys.argv[3] if len(sys.argv) > 3 else None
    if mode == 'time': timing_main(threads, repeats)
    elif mode in ('peak-step', 'peak-infer'): peak_main(mode, threads)
    else: main(threads, repeats)
