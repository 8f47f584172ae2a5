#!/usr/bin/env python3
"""Writes the results of scripts/experiment-real-data.sh into docs/EXPERIMENTS.md (the block of its
settings), from the run's own files: the model's size, the corpus's tokens, the steps trained, the MLM
perplexities, the EM/F1 table and the loading notes all come from runs/real, never typed.

    real_data_table.py --out runs/real --doc docs/EXPERIMENTS.md

The run writes RUN/run.json (its settings, machine, commit, elapsed time); a block is named after the
device, precision and step counts, so a small CPU run and a GPU run each keep their own.
"""
import argparse
import json
import math
import struct
from pathlib import Path

from experiment_table import write_block

MODELS = (("qa-before", "before: EM / F1"), ("qa-ro-en", "after, ro+en: EM / F1"), ("qa-ro", "after, ro only: EM / F1"))


def load(path):
    return json.load(open(path, encoding="utf-8"))


def parameters(safetensors):
    """Parameters of a safetensors file (tied weights are stored once)."""
    with open(safetensors, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    header.pop("__metadata__", None)
    return sum(math.prod(t["shape"]) for t in header.values())


def loading_notes(out, sets):
    """The warnings `qa-finetune predict` printed while reading each evaluation set (once per set)."""
    notes = []
    for name, _ in sets:
        log = out / "pred" / "qa-before" / name / "predict.log"
        if log.exists():
            notes += [line.removeprefix("warning: ").strip() for line in log.read_text(encoding="utf-8").splitlines()
                      if line.startswith("warning:")]
    return notes


def perplexity_lines(results):
    lines = [f"MLM evaluation perplexity after pre-training: {results['eval/perplexity']:.2f} "
             f"({results['eval/masked_tokens']:.0f} masked validation tokens).", ""]
    langs = sorted(k.split("/")[1] for k in results if k.count("/") == 2 and k.endswith("/perplexity"))
    if langs:
        lines += ["| language | masked validation tokens | perplexity |", "|---|---:|---:|"]
        lines += [f"| {l} | {results[f'eval/{l}/masked_tokens']:.0f} | {results[f'eval/{l}/perplexity']:.2f} |"
                  for l in langs]
        lines.append("")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/real")
    ap.add_argument("--doc", default="docs/EXPERIMENTS.md")
    a = ap.parse_args()
    out = Path(a.out)
    run = load(out / "run.json")
    mlm_manifest = load(out / "mlm" / "manifest.json")
    mlm_config = mlm_manifest["config"]
    mlm_train = load(out / "mlm" / "train_results.json")
    shape = load(out / "mlm" / "final" / "config.json")
    corpus = load(out / "corpus" / "manifest.json")
    train_tokens = sum(s["tokens"] for s in corpus["shards"] if s["split"] == "train")
    qa_steps = {m: load(out / m / "train_results.json")["global_step"] for m in ("qa-ro-en", "qa-ro")}
    rows = [json.loads(line) for line in open(out / "results.jsonl", encoding="utf-8")]
    sets = list(dict.fromkeys((r["set"], r["lang"]) for r in rows))
    by = {(r["model"], r["set"]): r for r in rows}

    device = mlm_manifest["device"].lower()
    block = run.get("block") or f"{device}-{run['precision']}-mlm{mlm_train['global_step']}-qa{qa_steps['qa-ro-en']}"
    lines = [f"### `{run['command'].strip()}`", ""]
    lines.append(f"Run on {run['date']}, {run['machine']}, commit {run['commit']}, "
                 f"{int(run['elapsed']) // 60} min {int(run['elapsed']) % 60} s for the whole script.")
    lines.append("")
    lines.append(f"- Model: XLM-R shape, hidden {shape['hidden_size']}, {shape['num_hidden_layers']} layers, "
                 f"{parameters(out / 'mlm' / 'final' / 'model.safetensors') / 1e6:.2f} M parameters, a "
                 f"{shape['vocab_size']:,}-piece tokenizer trained by `data-prep tokenizer` on the corpus.")
    lines.append(f"- MLM pre-training from scratch: {mlm_train['global_step']:,} steps of "
                 f"{mlm_config['train']['per_device_train_batch_size']} × {mlm_config['data']['max_seq_length']} "
                 f"tokens ({run['precision']}, {device}) on {train_tokens:,} training tokens, "
                 f"{mlm_train['train_runtime']:.0f} s.")
    lines.append(f"- QA fine-tuning (`configs/qa-real.toml`): {qa_steps['qa-ro-en']:,} steps on ro+en, "
                 f"{qa_steps['qa-ro']:,} on ro only.")
    lines.append("")
    lines.extend(perplexity_lines(load(out / "mlm" / "eval_results.json")))
    lines.append("| data set | lang | questions | " + " | ".join(title for _, title in MODELS) + " |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for name, lang in sets:
        cells = [f"{by[(m, name)]['exact']:.2f} / {by[(m, name)]['f1']:.2f}" for m, _ in MODELS]
        lines.append(f"| {name} | {lang} | {by[('qa-before', name)]['total']} | " + " | ".join(cells) + " |")
    notes = loading_notes(out, sets)
    if notes:
        lines += ["", "Loading notes (`qa-finetune predict`'s warnings on these sets):", ""]
        lines += [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    write_block(Path(a.doc), block, text, tag="experiment-real-data")
    print(text)


if __name__ == "__main__":
    main()
