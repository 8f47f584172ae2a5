#!/usr/bin/env python3
"""Where a training step's time goes, from Chrome traces of libtorch's profiler: medqa's
(`bench_step --profile`) and the transformers reference's (`bench_mlm.py --profile`, torch.profiler)
side by side, per step.

    scripts/tools/profile_summary.py --steps N NAME=TRACE.json [NAME=TRACE.json ...] [--json OUT]

For each trace: wall time, GPU busy time (the union of kernel, copy and memset intervals) and so how
long the device waited for the host, kernels and host-device synchronisations per step, the device time
by kind of kernel, and the costliest kernels.
"""
import argparse
import json
import re
from collections import defaultdict

# Kinds of kernel, first match wins; the names are those of CUTLASS/cuBLAS/ATen kernels on Hopper.
KINDS = [
    ("matmul", r"gemm|cutlass|xmma|nvjet|cublas|sm90_|sm80_|wgmma"),
    ("attention", r"flash|fmha|attention|_efficient_|mem_eff"),
    ("layer_norm", r"layer_norm|LayerNorm"),
    ("softmax/loss", r"softmax|nll_loss|cross_entropy|log_softmax"),
    ("dropout", r"dropout|philox|bernoulli|fused_dropout|medqa"),
    ("optimizer", r"adam|Adam|multi_tensor|foreach"),
    ("embedding", r"embedding|indexSelect|index_select|scatter|gather|index_put|indexFuncLarge|index_kernel"),
    ("reduction", r"reduce_kernel|norm_kernel|Reduce"),
    ("cast/copy", r"copy|cast|to_copy|CatArray|direct_copy"),
    ("gelu", r"gelu|GeluCUDA"),
    ("elementwise", r"elementwise|vectorized|unrolled|Functor"),
]
DEVICE_CATS = {"kernel", "gpu_memcpy", "gpu_memset"}
SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")


def kind_of(name):
    for kind, pattern in KINDS:
        if re.search(pattern, name):
            return kind
    return "other"


def summarise(path, steps):
    events = [e for e in json.load(open(path))["traceEvents"] if e.get("ph") == "X" and "dur" in e]
    device = sorted((e for e in events if e.get("cat") in DEVICE_CATS), key=lambda e: e["ts"])
    host_ops = [e for e in events if e.get("cat") == "cpu_op"]
    timed = host_ops + device
    if not timed:
        raise SystemExit(f"{path}: no operators in the trace")
    start = min(e["ts"] for e in timed)
    wall = max(e["ts"] + e["dur"] for e in timed) - start
    busy, end = 0.0, float("-inf")
    for e in device:  # union of the device's intervals
        s, f = e["ts"], e["ts"] + e["dur"]
        if f > end:
            busy += f - max(s, end)
            end = f
    by_kind, by_kernel, counts = defaultdict(float), defaultdict(float), defaultdict(int)
    for e in device:
        name = e["name"] if e.get("cat") == "kernel" else e["cat"]
        kind = kind_of(name) if e.get("cat") == "kernel" else "cast/copy"
        by_kind[kind] += e["dur"]
        by_kernel[name] += e["dur"]
        counts[name] += 1
    # Which operator launched each kernel: Kineto gives a kernel the "External id" of the innermost host
    # operator around its launch, and that operator its input shapes and types (the profiler records
    # them), so "129 copies" becomes "aten::copy_ of [32, 512, 768] float → bf16, in the backward".
    launcher = {e["args"]["External id"]: e for e in host_ops if "External id" in e.get("args", {})}
    by_op, op_counts = defaultdict(float), defaultdict(int)
    for e in device:
        op = launcher.get(e.get("args", {}).get("External id"))
        if op is None:
            continue
        a = op.get("args", {})
        key = f"{op['name']} {a.get('Input Dims', '')} {a.get('Input type', '')}"
        by_op[key] += e["dur"]
        op_counts[key] += 1
    runtime = [e for e in events if e.get("cat") == "cuda_runtime"]
    syncs = sum(1 for e in runtime if e["name"] in SYNC_CALLS)
    per = lambda x: x / steps / 1000.0  # µs in the whole trace → ms per step
    return {
        "trace": path,
        "wall_ms_per_step": per(wall),
        "gpu_busy_ms_per_step": per(busy),
        "gpu_busy_fraction": busy / wall if wall else 0.0,
        "kernels_per_step": sum(1 for e in device if e.get("cat") == "kernel") / steps,
        "host_ops_per_step": len(host_ops) / steps,
        "syncs_per_step": syncs / steps,
        "ms_per_step_by_kind": {k: per(v) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
        "top_kernels": [
            {"name": n[:110], "ms_per_step": per(t), "calls_per_step": counts[n] / steps, "kind": kind_of(n)}
            for n, t in sorted(by_kernel.items(), key=lambda kv: -kv[1])[:15]
        ],
        "top_launching_ops": [
            {"op": k[:200], "ms_per_step": per(t), "kernels_per_step": op_counts[k] / steps}
            for k, t in sorted(by_op.items(), key=lambda kv: -kv[1])[:20]
        ],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, required=True, help="how many steps each trace holds")
    ap.add_argument("--json", help="also write the summaries here")
    ap.add_argument("traces", nargs="+", help="NAME=TRACE.json")
    a = ap.parse_args()
    runs = {}
    for item in a.traces:
        name, _, path = item.partition("=")
        runs[name] = summarise(path, a.steps)
    names = list(runs)
    row = lambda label, vals: print(f"{label:<28}" + "".join(f"{v:>16}" for v in vals))
    row("per step", names)
    for key, fmt in [("wall_ms_per_step", "{:.2f} ms"), ("gpu_busy_ms_per_step", "{:.2f} ms"),
                     ("gpu_busy_fraction", "{:.0%}"), ("kernels_per_step", "{:.0f}"),
                     ("host_ops_per_step", "{:.0f}"), ("syncs_per_step", "{:.1f}")]:
        row(key.replace("_per_step", ""), [fmt.format(runs[n][key]) for n in names])
    kinds = sorted({k for r in runs.values() for k in r["ms_per_step_by_kind"]},
                   key=lambda k: -max(r["ms_per_step_by_kind"].get(k, 0) for r in runs.values()))
    print("device time by kind (ms per step)")
    for k in kinds:
        row(f"  {k}", [f"{runs[n]['ms_per_step_by_kind'].get(k, 0.0):.2f}" for n in names])
    for n in names:
        print(f"costliest kernels, {n} (ms per step, calls per step)")
        for k in runs[n]["top_kernels"]:
            print(f"  {k['ms_per_step']:8.3f} {k['calls_per_step']:6.0f}  {k['kind']:<12} {k['name']}")
    for n in names:
        print(f"device time by launching operator and its inputs, {n} (ms per step, kernels per step)")
        for k in runs[n]["top_launching_ops"]:
            print(f"  {k['ms_per_step']:8.3f} {k['kernels_per_step']:6.0f}  {k['op']}")
    if a.json:
        json.dump(runs, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
