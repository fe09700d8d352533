"Shared by the bench scripts: interleaved timing on a shared machine."
import time


def best_times(fns: dict, repeats: int) -> dict:
    "Seconds of each callable in `fns`: the fastest of `repeats` interleaved runs (load from other processes hits all alike)."
    for f in fns.values(): f()                                    # warm-up
    ts = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter(); f(); ts[k].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in ts.items()}
