#!/usr/bin/env bash
# Entity linking quality and speed: medqa's linker (normalised exact, word order, character 3-gram
# TF-IDF) against plain exact matching (case aside) in the same run, on the shipped sample terminology
# and answers and, with ../shared/data, on the real TICO-19 term lists (perturbed as clinicians write,
# and another provider's translations). Prints accuracy@1/@5 per language and variant, and queries/s.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh >/dev/null
cargo build -q --release -p medqa-link --example bench_link
target/release/examples/bench_link --shared ../shared/data > runs/bench-link.jsonl
python3 - runs/bench-link.jsonl <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for s in dict.fromkeys(r["set"] for r in rows):
    part = [r for r in rows if r["set"] == s]
    first = part[0]
    print(f"== {s}: {first['concepts']} concepts, least cosine {first['min_score']}; linker {first['link_queries_per_sec']:,.0f} queries/s, "
          f"exact {first['exact_queries_per_sec']:,.0f} queries/s")
    print(f"{'language':<8} {'variant':<18} {'queries':>7} {'link @1':>8} {'link @5':>8} {'exact @1':>9}")
    for r in part:
        if r["variant"] == "all" or r["lang"] == "all":
            print(f"{r['lang']:<8} {r['variant']:<18} {r['queries']:>7} {r['link_acc1']:>7.1f}% {r['link_acc5']:>7.1f}% {r['exact_acc1']:>8.1f}%")
total = [r for r in rows if r["lang"] == "all" and r["variant"] == "all"]
for r in total:
    print(f"accuracy@1 ({r['set']}, all languages): linker {r['link_acc1']:.1f}% vs exact match {r['exact_acc1']:.1f}%")
PY
