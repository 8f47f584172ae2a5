#!/usr/bin/env python3
"""Writes docs/BENCHMARKS.md from the benchmark logs kept under docs/benchmarks/: one table per
benchmark, one row per run, with the command that made it and the run's own result lines.

Two kinds of log are read:
- `scripts/bench/record.sh` logs (docs/benchmarks/runs/*.log): a `# bench:`, `# command:`, `# commit:`,
  `# date:`, `# machine:` header, then the driver's output;
- `scripts/bench/gpu.sh run` logs (docs/benchmarks/<date>-<name>/*.log whose first line is nvidia-smi's
  `name, driver, memory`): one section per `### command`; the date is the directory's.

    python3 scripts/tools/benchmarks_md.py            rewrite docs/BENCHMARKS.md
    python3 scripts/tools/benchmarks_md.py --check    exit 1 when it is not what the logs give
"""
import glob
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "docs", "BENCHMARKS.md")

# What each driver measures, in the order the document lists them.
BENCHES = [
    ("mlm", "MLM training step, medqa against transformers + torch AdamW, same shapes (CPU; `--device cuda` works too)"),
    ("mlm_gpu", "MLM training step on a GPU: tokens/s, MFU and peak GPU memory of both sides"),
    ("mlm_trainer", "the mlm-pretrain loop itself on a GPU at xlm-roberta-base's shape (steady state from two run lengths), to set beside `mlm_gpu`'s step of the same run"),
    ("mlm_levers", "one lever of medqa's MLM step on a GPU, with and without it, alternated in the same run"),
    ("qa", "QA training (features/s) and end-to-end prediction on COVID-QA, against a transformers loop doing run_qa's windows"),
    ("extract", "concept extraction end to end (notes × concepts), against a transformers loop"),
    ("eval", "SQuAD v1.1 scoring, `eval score` against a Python scorer"),
    ("tokenize", "corpus tokenization, data-prep against Python tokenizers' encode_batch"),
    ("link", "entity linking: accuracy@1/@5 per language of medqa's linker against plain exact matching, and queries/s"),
    ("checkpoints", "checkpoints written in the background (`train.async_checkpoints`, the default) against written by the loop as transformers' Trainer writes them: the mlm-pretrain loop with a checkpoint every few steps, the two alternated in the same run; the last checkpoints compared byte for byte"),
    ("dist", "data-parallel MLM: 2 ranks × 1 thread (Gloo) against 1 process × 2 threads; on CUDA, an NCCL group of one"),
    ("repeatability", "the same seeded CPU training run many times, several processes at once, at libtorch's default thread count and on one thread, and PyTorch alone: how many distinct results (1: every run the same)"),
    ("probe_shape_cost", "what a new batch shape costs on a GPU (PyTorch alone)"),
]
# A result line: a comparison, a rate or a figure a reader looks for.
RESULT = re.compile(r"speed-up|ratio|MFU|lever |same answers|tokens/s|features/s|questions/s|scores equal|docs/s|"
                    r"accuracy@|queries/s|of which checkpoints|background checkpoints|distinct", re.I)
NOISE = re.compile(r"^\s*[{\[]|warning:|Compiling|Finished")


def bench_of(command):
    m = re.search(r"scripts/(?:bench/|bench[-_])?([a-z_]+?)(?:_gpu)?\.(?:sh|py)", command)
    if not m:
        return None
    name = m.group(1)
    if "mlm_gpu" in command or "bench_mlm_gpu" in command:
        return "mlm_gpu"
    return name


def results(lines):
    return [l.strip() for l in lines if RESULT.search(l) and not NOISE.search(l)]


def record_log(path):
    text = open(path, encoding="utf-8").read().splitlines()
    head = {}
    body = []
    for line in text:
        m = re.match(r"# (bench|command|commit|date|machine): (.*)", line)
        if m and not body:
            head[m.group(1)] = m.group(2)
        else:
            body.append(line)
    if "bench" not in head:
        return []
    return [dict(bench=head["bench"], command=head.get("command", ""), commit=head.get("commit", "—"),
                 date=head.get("date", "")[:10], machine=head.get("machine", ""), log=path, lines=results(body))]


def gpu_log(path):
    text = open(path, encoding="utf-8").read().splitlines()
    if not text or not re.match(r"NVIDIA .*, .*, \d+ MiB", text[0]):
        return []
    machine = text[0].split(",")[0]
    versions = next((l for l in text[:3] if l.startswith("torch ")), "")
    date = re.match(r"(\d{4}-\d{2}-\d{2})", os.path.basename(os.path.dirname(path)))
    runs, command, body = [], None, []

    def flush():
        if command and bench_of(command):
            runs.append(dict(bench=bench_of(command), command=command, commit="see the run's README",
                             date=date.group(1) if date else "", machine=f"{machine} ({versions})", log=path,
                             lines=results(body)))

    for line in text:
        if line.startswith("### failed"):
            continue
        if line.startswith("### "):
            flush()
            command, body = line[4:], []
        else:
            body.append(line)
    flush()
    return runs


def render(runs):
    out = ["# Benchmarks", "",
           "Written by `scripts/tools/benchmarks_md.py` from the logs under `docs/benchmarks/` (each the unedited",
           "output of a run: `scripts/bench/record.sh NAME` on a CPU, `scripts/bench/gpu.sh run` on a GPU machine);",
           "do not edit by hand. Every figure compares medqa with its reference in the same run on the same",
           "machine. Newest runs first.", ""]
    for name, what in BENCHES:
        rows = sorted((r for r in runs if r["bench"] == name), key=lambda r: (r["date"], r["log"]), reverse=True)
        if not rows:
            continue
        out += [f"## {name}", "", what + ".", "", "| date | machine | commit | command | result | log |",
                "|---|---|---|---|---|---|"]
        for r in rows:
            cell = lambda s: s.replace("|", "\\|")
            result = "<br>".join(cell(l) for l in r["lines"]) or "(no result line: see the log)"
            log = os.path.relpath(r["log"], os.path.join(ROOT, "docs"))
            out.append(f"| {r['date']} | {cell(r['machine'])} | {r['commit']} | `{cell(r['command'])}` | {result} | "
                       f"[{os.path.basename(r['log'])}]({log}) |")
        out.append("")
    return "\n".join(out)


def main():
    runs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "docs", "benchmarks", "**", "*.log"), recursive=True)):
        runs += record_log(path) or gpu_log(path)
    text = render(runs)
    if "--check" in sys.argv:
        current = open(OUT, encoding="utf-8").read() if os.path.exists(OUT) else ""
        if current != text:
            print("docs/BENCHMARKS.md is not what the logs give: run python3 scripts/tools/benchmarks_md.py",
                  file=sys.stderr)
            sys.exit(1)
        return
    open(OUT + ".tmp", "w", encoding="utf-8").write(text)
    os.replace(OUT + ".tmp", OUT)


if __name__ == "__main__":
    main()
