#!/usr/bin/env bash
# The HTTP service under a bounded local load (loopback only) against the CLI on the same documents and
# model in the same run: `extract` over the 42 held-out sample notes (34 concepts each) gives the CLI's
# documents/s after loading; `serve` answers the same notes as /extract requests from 1 and from 8
# concurrent clients (crates/serve/examples/load_test.rs): documents/s and latency p50/p99.
# Model: a random XLM-R QA model (scripts/bench/bench_qa.py make-model, MODEL_ARGS as in extract.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh --test >/dev/null
cargo build -q --release -p data-prep -p extract -p medqa-serve --bins --example load_test
bin=target/release; py=.venv/bin/python
work=runs/bench-serve
rm -rf "$work"; mkdir -p "$work/docs"
cp data/sample/notes/stroke-*-1[5-9].*.txt data/sample/notes/stroke-*-20.*.txt "$work/docs/"
"$bin"/data-prep tokenizer --config configs/corpus-demo.toml --set "tokenizer=$work/tokenizer.json" \
  --vocab-size 4000 --out "$work/tokenizer.json" >/dev/null
# shellcheck disable=SC2086
$py scripts/bench/bench_qa.py make-model "$work/model" --tokenizer "$work/tokenizer.json" ${MODEL_ARGS:-} >/dev/null
export OMP_NUM_THREADS=2
cli=$("$bin"/extract --model "$work/model" --concepts configs/concepts-stroke.toml --docs "$work/docs" \
  --out "$work/cli.csv" --device cpu --batch-size 64 --docs-per-chunk 8 | tail -n 1)
echo "CLI: $cli"
"$bin"/serve --model "$work/model" --concepts configs/concepts-stroke.toml --listen 127.0.0.1:0 --device cpu \
  --batch-size 64 --max-batch-items 8 > "$work/serve.out" 2> "$work/serve.err" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do grep -q "serving on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^serving on //p' "$work/serve.out")
[ -n "$url" ] || { cat "$work/serve.err" >&2; exit 1; }
one=$("$bin"/examples/load_test --url "$url" --docs "$work/docs" --concurrency 1)
eight=$("$bin"/examples/load_test --url "$url" --docs "$work/docs" --concurrency 8 --repeat 2)
kill -TERM $pid; wait $pid || true
echo "serve, 1 client:  $one"
echo "serve, 8 clients: $eight"
$py - "$cli" "$one" "$eight" <<'PY'
import json, re, sys
m = re.search(r"(\d+) documents .* in ([0-9.]+) s", sys.argv[1])
cli_docs, cli_s = int(m.group(1)), float(m.group(2))
cli_rate = cli_docs / cli_s
for name, raw in (("1 client", sys.argv[2]), ("8 clients", sys.argv[3])):
    r = json.loads(raw)
    assert r["errors"] == 0, r
    print(f"serve, {name}: {r['docs_per_sec']:.2f} documents/s, p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms; "
          f"CLI {cli_rate:.2f} documents/s; ratio (serve / CLI throughput): {r['docs_per_sec'] / cli_rate:.2f}x")
PY
