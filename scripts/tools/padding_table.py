#!/usr/bin/env python3
"""Writes the table of scripts/experiment-e5-padding.sh into docs/EXPERIMENTS.md (its own block), from the
`eval score` reports of the run: every figure there comes from this script, never typed.

    padding_table.py --out RUN_DIR --seeds "1 2 3" --file BIOASQ_FILE --command CMD --elapsed SECONDS
        --settings "k=v ..." --doc docs/EXPERIMENTS.md
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

from experiment_table import mean_sd, questions, sha256, write_block

ARMS = [("medqa-out", "medqa", "padding out (medqa's default)"),
        ("medqa-runqa", "medqa", "run_qa padding (`pad_to_max_length`, `padding_in_loss`)"),
        ("transformers-runqa", "transformers", "run_qa padding (Trainer as it is)"),
        ("transformers-out", "transformers", "padding out (`--mask-padding`)")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for a in ("--out", "--seeds", "--file", "--command", "--elapsed", "--settings", "--doc"):
        ap.add_argument(a, required=True)
    a = ap.parse_args()
    out, seeds = Path(a.out), a.seeds.split()
    root = Path(__file__).resolve().parents[2]
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    imp = json.load(open(out / "e5" / "import.json", encoding="utf-8"))
    f1 = {}
    lines = [f"### Padding in the QA loss: `{a.command.strip()}`", "",
             f"Run on {datetime.date.today().isoformat()}, {os.cpu_count()} CPU cores ({platform.machine()}), "
             f"commit {commit}, {int(a.elapsed) // 60} min in all. Seeds {', '.join(seeds)}. Settings: `{a.settings}`; "
             "frozen word embeddings, 10% warm-up, weight decay 0.01, run_qa's windows on both sides. "
             f"Weights: `{imp['weights_file']}` (sha256 `{imp['weights_sha256'][:16]}…`). Data: BioASQ 7b "
             f"(`{a.file}` `{sha256(root.parent / 'shared' / 'data' / 'qa' / a.file)[:16]}…`) split 80/20 by "
             f"context; {questions(out / 'data' / 'train.json')} training and {questions(out / 'data' / 'dev.json')} "
             "held-out questions.", "",
             "| side | loss | EM | F1 | F1 per seed |", "|---|---|---:|---:|---|"]
    for arm, side, what in ARMS:
        rows = [json.load(open(out / "scores" / f"{arm}-seed{s}.json", encoding="utf-8"))["overall"] for s in seeds]
        (em, ems), (mf, mfs) = mean_sd([r["exact"] for r in rows]), mean_sd([r["f1"] for r in rows])
        f1[arm] = [r["f1"] for r in rows]
        lines.append(f"| {side} | {what} | {em:.2f} ± {ems:.2f} | {mf:.2f} ± {mfs:.2f} | "
                     f"{', '.join(f'{x:.2f}' for x in f1[arm])} |")
    lines.append("")
    for ours, theirs, what in [("medqa-out", "transformers-out", "padding out"),
                               ("medqa-runqa", "transformers-runqa", "run_qa padding")]:
        m = sum(f1[ours]) / len(f1[ours])
        lo, hi = min(f1[theirs]), max(f1[theirs])
        verdict = "within" if lo <= m <= hi else "**outside**"
        lines.append(f"- {what}: medqa's mean F1 {m:.2f} is {verdict} transformers' seed range {lo:.2f}–{hi:.2f}.")
    block = "\n".join(lines) + "\n"
    write_block(Path(a.doc), "padding", block)
    print(block)


if __name__ == "__main__":
    main()
