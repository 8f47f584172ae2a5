#!/usr/bin/env bash
# SQuAD v1.1 scoring speed: `eval score` against a Python scorer on the same files, end to end (process
# start to exit, JSON reading included), best of 3, with the scores compared. The Python side is
# EVAL_SCRIPT when given (the official evaluate-v1.1.py: `python evaluate-v1.1.py DATA PREDS`), else
# scripts/bench/squad_v1_reference.py (the same rules, written here). Data: ../shared/data/qa/squad-v1.1-dev.en.json,
# else the sample dev set; predictions are made from the golds with edits, so scores are not trivial.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh --test >/dev/null
cargo build --release -p eval >/dev/null
py=.venv/bin/python
data=../shared/data/qa/squad-v1.1-dev.en.json
[ -f "$data" ] || data=data/sample/qa/dev.json
work=runs/bench-eval
mkdir -p "$work"
$py - "$data" "$work/predictions.json" <<'PY'
import json, sys
preds = {}
for i, qa in enumerate(q for a in json.load(open(sys.argv[1], encoding="utf-8"))["data"]
                       for p in a["paragraphs"] for q in p["qas"]):
    gold = qa["answers"][0]["text"] if qa["answers"] else ""
    if i % 7 == 3:
        continue  # missing: scores 0
    preds[qa["id"]] = " ".join(gold.split()[1:]) if i % 3 == 1 else ("The " + gold + "!" if i % 3 == 2 else gold)
json.dump(preds, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)
PY
script=${EVAL_SCRIPT:-scripts/bench/squad_v1_reference.py}
best() {  # best wall time of 3 runs of "$@", and the last run's stdout
  local b=999999999999999 out t0 t1
  for _ in 1 2 3; do
    t0=$(date +%s%N); out=$("$@" 2>/dev/null); t1=$(date +%s%N)
    b=$(( (t1 - t0) < b ? (t1 - t0) : b ))
  done
  printf '%s\n%s\n' "$b" "$out"
}
mapfile -t ours < <(best target/release/eval score --data "$data" --predictions "$work/predictions.json" --version v1)
mapfile -t theirs < <(best $py "$script" "$data" "$work/predictions.json")
$py - "${ours[0]}" "$(printf '%s\n' "${ours[@]:1}")" "${theirs[0]}" "${theirs[1]}" "$script" <<'PY'
import json, sys
o_ns, o, t_ns, t, script = int(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
oe, of = o["overall"]["exact"], o["overall"]["f1"]
assert abs(oe - t["exact_match"]) < 1e-9 and abs(of - t["f1"]) < 1e-9, (o["overall"], t)
print(f"eval score: EM {oe:.4f} F1 {of:.4f} in {o_ns / 1e9:.3f} s; {script}: the same scores in {t_ns / 1e9:.3f} s")
print(f"speed-up (end to end, {o['overall']['total']} questions): {t_ns / o_ns:.2f}x")
PY
