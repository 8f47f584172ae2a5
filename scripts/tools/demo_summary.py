#!/usr/bin/env python3
"""The figures of one demo run, read from its files, as Markdown.

    scripts/tools/demo_summary.py runs/demo                     print them
    scripts/tools/demo_summary.py runs/demo --readme README.md  also put them into the README, between
                                                                 the demo-figures markers
    scripts/tools/demo_summary.py runs/demo-pretrained --readme README.md
                                                                 `demo.sh --pretrained`'s run, into the
                                                                 demo-pretrained-figures markers

scripts/demo.sh calls it at its end (runs/demo/summary.md), so a figure the README gives about the demo is
always one a run printed, never one typed. Standard library only.
"""
import argparse
import csv
import datetime
import json
import platform
import os
import re
import subprocess
import sys
from pathlib import Path


def markers(run):
    """The README block of a run: `demo.sh --pretrained`'s has its own, beside the from-scratch demo's."""
    name = "demo-pretrained-figures" if pretrained(run) else "demo-figures"
    return (f"<!-- {name}:begin (scripts/tools/demo_summary.py writes this block) -->", f"<!-- {name}:end -->")


def pretrained(run):
    return (run / "e5" / "import.json").exists()


STEPS = [
    ("import", "data-prep import-e5: the pretrained encoder"),
    ("data-prep-tokenizer-corpus", "data-prep: tokenizer and corpus shards"),
    ("data-prep-qa", "data-prep: QA-set validation"),
    ("mlm", "MLM pre-training"),
    ("qa", "QA fine-tuning"),
    ("predict-eval", "predict + eval"),
    ("extract", "extraction, own-language questions"),
    ("extract-en", "extraction, English questions"),
    ("nightly", "nightly evaluation"),
    ("curves", "training curves"),
    ("parity", "parity report"),
]


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def last_step(log):
    step = 0
    with open(log, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                step = max(step, json.loads(line)["step"])
    return step


def gold_matches(run, root):
    """How many English-question extractions equal the gold value of their note and concept."""
    gold = {}
    with open(root / "data/sample/notes/gold.jsonl", encoding="utf-8") as f:
        for line in f:
            g = json.loads(line)
            gold[(g["doc_id"], g["concept"])] = g["answer"]
    with open(run / "extraction-en-questions.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    # Surrounding white space aside, as SQuAD scoring sets it aside: a tokenizer.json read as written with a
    # bare Metaspace pre-tokenizer (XLM-R's file without a tokenizer_config.json) gives the space before a
    # word to the word's token, so its answers start with one.
    same = sum(1 for r in rows
               if r["answer"].strip() and r["answer"].strip() == gold.get((r["doc_id"], r["concept"]), "").strip())
    return same, len(rows)


def cpu_model():
    """The processor's name and its widest vector instructions: figures differ between processors, as
    libtorch's CPU kernels differ by instruction set (two machines both named "AMD EPYC", one with AVX-512
    BF16 and one without, gave different demo tables)."""
    name, flags = None, set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name") and name is None:
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    for flag, isa in (("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2")):
        if flag in flags:
            return f"{name} with {isa}"
    return name


def commit(run, root):
    """The commit the run's binaries were built from (its manifest), else this checkout's."""
    try:
        manifest = read_json(run / "qa/manifest.json")
        if manifest.get("git_commit"):
            return manifest["git_commit"][:7] + ("-dirty" if manifest.get("git_dirty") else "")
    except (OSError, ValueError, KeyError):
        pass
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def by_language(mlm_eval):
    """The validation split's perplexity per language, where the evaluation reports languages."""
    langs = sorted(k.split("/")[1] for k in mlm_eval if k.count("/") == 2 and k.endswith("/perplexity"))
    if not langs:
        return ""
    parts = ", ".join(f"{lang} {mlm_eval[f'eval/{lang}/perplexity']:.1f}" for lang in langs)
    return f" ({parts})"


def questions(path):
    d = read_json(path)
    return sum(len(p["qas"]) for a in d["data"] for p in a["paragraphs"]), len(d["data"])


def model_line(run):
    """What the QA model was fine-tuned from: the MLM run, or the imported encoder."""
    if pretrained(run):
        imp = read_json(run / "e5/import.json")
        trained, notes = questions(run / "qa-data/train.json")
        return (f"Encoder: multilingual-e5-small imported by `data-prep import-e5` ({imp['parameters']:,} parameters, "
                f"`{imp['weights_file']}` sha256 `{imp['weights_sha256'][:16]}…`), no MLM step. QA fine-tuning on "
                f"{trained} questions of {notes} training notes")
    mlm_eval = read_json(run / "mlm/eval_results.json")
    mlm_cfg = read_json(run / "mlm/manifest.json")["config"]
    shape = mlm_cfg["model"].get("shape", {})
    return (f"MLM: {last_step(run / 'mlm/train_log.jsonl')} steps (hidden {shape.get('hidden_size', '?')}, "
            f"{shape.get('num_hidden_layers', '?')} layers, learning rate {mlm_cfg['train']['learning_rate']}), "
            f"eval perplexity {mlm_eval.get('eval/perplexity', float('nan')):.1f}{by_language(mlm_eval)}. QA")


def summary(run, root):
    timings = {}
    for line in open(run / "timings.tsv", encoding="utf-8"):
        name, secs = line.rstrip("\n").split("\t")
        timings[name] = int(secs)
    total = sum(timings.values())
    ev = read_json(run / "eval.json")
    qa_cfg = read_json(run / "qa/manifest.json")["config"]
    same, asked = gold_matches(run, root)
    quick = run.name.endswith("quick")
    cmd = "scripts/demo.sh --quick" if quick else "scripts/demo.sh --pretrained" if pretrained(run) else "scripts/demo.sh"
    out = []
    out.append(f"Measured by `{cmd}` on {datetime.date.today().isoformat()} ({os.cpu_count()} CPU cores, "
               f"{platform.machine()}, {cpu_model()}, commit {commit(run, root)}), after the build: "
               f"**{total} s** of pipeline.")
    out.append("")
    out.append("| step | seconds |")
    out.append("|---|---:|")
    for key, label in STEPS:
        if key in timings:
            out.append(f"| {label} | {timings[key]} |")
    out.append("")
    out.append(f"{model_line(run)}: {last_step(run / 'qa/train_log.jsonl')} steps of {qa_cfg['train']['per_device_train_batch_size']} "
               f"windows. Extraction: {asked} note × concept questions in {timings.get('extract-en', 0)} s "
               f"with English questions, {same} of {asked} equal to the gold value (white space around it aside).")
    out.append("")
    out.append("| held-out questions | lang | questions | EM | F1 |")
    out.append("|---|---|---:|---:|---:|")
    for lang, s in sorted(ev["by_language"].items()):
        out.append(f"| sample-dev | {lang} | {s['total']} | {s['exact']:.2f} | {s['f1']:.2f} |")
    o = ev["overall"]
    out.append(f"| sample-dev | all | {o['total']} | **{o['exact']:.2f}** | **{o['f1']:.2f}** |")
    return "\n".join(out) + "\n"


def update_readme(readme, text, run):
    begin, end = markers(run)
    body = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(body):
        sys.exit(f"{readme}: no {begin} markers")
    readme.write_text(pattern.sub(lambda _: f"{begin}\n{text}{end}", body), encoding="utf-8")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="the demo's output directory (runs/demo or runs/demo-quick)")
    ap.add_argument("--readme", type=Path, help="replace the demo-figures block of this file")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[2]
    text = summary(args.run, root)
    print(text, end="")
    if args.readme:
        update_readme(args.readme, text, args.run)


if __name__ == "__main__":
    main()
