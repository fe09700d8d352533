"""GNL speed against the frozen-teacher floor and our RD4AD, measured in the same run (wide_resnet50_2, batch 8, 256², CPU).

usage: python bench/gnl.py [threads=2] [repeats=3]

Prints, as ratios to the teacher's forward (layers 1-3, no autograd) on the same batch of 8 images:
  * the stage-1 step (teacher on the 8 images and their 8 views stacked, OCBE + decoder, HKD + structure loss,
    backward, Adam step), and the same losses computed the way the official code is structured (two teacher
    passes and two student passes, one per half) for reference;
  * the stage-2 step (teacher + frozen student under no_grad, feature products, segmentation net, focal + L1,
    backward, SGD step);
  * our RD4AD training step (same student, normal images only, global cosine loss);
  * inference (eval forward: maps, scores, cues) of GNL and of RD4AD;
  * the data side, which runs on the CPU in the loader: making 8 views, and 8 viewed DRAEM anomalies.
The images are 8 MVTec bottle training images (../shared/data) or, without them, 8 toy tile images upscaled to 256.
Timings are the minimum of interleaved repeats on a shared machine: compare the ratios, not seconds.
"""
import sys, time, warnings
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.simplefilter('ignore')
from aand import B, SIZE, images                     # the AAND bench's batch (bottle or toy)
from _timing import best_times                      # interleaved best-of timer
from daf_lite.gnl import GNL, GNLConfig, structure_loss
from daf_lite.rd import RD4AD, RD4ADConfig
from daf_lite.synthesis import item_generator
from daf_lite.teacher import Teacher


def stepper(stage):
    opt = stage.optimizer(stage.parameters())
    def step(batch):
        for m in stage.train_modules(): m.train()
        opt.zero_grad(set_to_none=True)
        stage.loss(batch)['loss'].backward()
        opt.step()
    return step


def official_stage1(m: GNL, batch: dict) -> None:
    "Stage-1 loss the official way: each half through teacher and student separately (no optimiser step)."
    for mod in m.trainable(): mod.train()
    loss = 0
    for x in (batch['image'], batch['augmented']):
        with torch.no_grad(): ts = m.teacher(x)
        ss = m.student(ts)
        loss = loss + m.distillation(ts, ss) + structure_loss(ts, ss)
    loss.backward()
    m.zero_grad(set_to_none=True)


def main(threads: int = 2, repeats: int = 3):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x, source = images()
    gnl = GNL(GNLConfig.preset('paper', weights='random'))
    rd = RD4AD(RD4ADConfig.preset('paper', weights='random'))
    rd.teacher.load_state_dict(gnl.teacher.state_dict())
    floor_teacher = Teacher('wide_resnet50_2', (1, 2, 3), weights='random')
    st1, st2 = gnl.stages()
    views = [st1.synthesizer(im, item_generator(0, i)) for i, im in enumerate(x)]
    anomalies = [st2.synthesizer(im, item_generator(1, i)) for i, im in enumerate(x)]
    b1 = {'image': x, 'augmented': torch.stack([v for v, _ in views])}
    b2 = {'image': x, 'augmented': torch.stack([a for a, _ in anomalies]), 'anomaly_mask': torch.stack([m for _, m in anomalies])}
    s1, s2, srd = stepper(st1), stepper(st2), stepper(rd.stages()[0])
    print(f"GNL vs RD4AD, wide_resnet50_2 (paper presets, random weights), batch {B}, {SIZE}², {source}, CPU, "
          f"{threads} threads, best of {repeats} interleaved repeats; ratios to the frozen teacher's forward")

    def floor():
        with torch.no_grad(): floor_teacher(x)

    def infer(m):
        def run():
            m.eval(); m(x)
        return run

    fns = {'floor': floor, 'stage1': lambda: s1(b1), 'stage1_official': lambda: official_stage1(gnl, b1),
           'stage2': lambda: s2(b2), 'rd_step': lambda: srd({'image': x}), 'infer': infer(gnl), 'rd_infer': infer(rd),
           'views': lambda: [st1.synthesizer(im, item_generator(2, i)) for i, im in enumerate(x)],
           'viewed_draem': lambda: [st2.synthesizer(im, item_generator(3, i)) for i, im in enumerate(x)]}
    t = best_times(fns, repeats)
    f = t['floor']
    r = {k: v / f for k, v in t.items()}
    print(f"teacher forward (floor): {f * 1000:.0f} ms")
    print(f"stage 1 step: {r['stage1']:.2f}x floor (16 images: 8 normal + 8 views); the official structure (two "
          f"passes, one per half, no optimiser step): {r['stage1_official']:.2f}x; our RD4AD step on the 8 normal "
          f"images {r['rd_step']:.2f}x -> stage 1 = {t['stage1'] / t['rd_step']:.2f}x RD4AD step")
    print(f"stage 2 step: {r['stage2']:.2f}x floor")
    print(f"inference:    {r['infer']:.2f}x floor; RD4AD {r['rd_infer']:.2f}x -> GNL = {t['infer'] / t['rd_infer']:.2f}x "
          f"RD4AD inference (the difference is the segmentation net)")
    print(f"data side (CPU, per batch of {B}): views {r['views']:.2f}x floor, viewed DRAEM anomalies "
          f"{r['viewed_draem']:.2f}x floor")


if __name__ == '__main__':
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
