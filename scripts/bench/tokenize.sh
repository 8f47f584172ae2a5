#!/usr/bin/env bash
# Corpus tokenization throughput: data-prep's tokenization step against Python `tokenizers`
# `encode_batch` on the same cleaned documents, the same tokenizer.json and the same cores, in the
# same run; prints both (best of 3) and the ratio. Uses configs/corpus-shared.toml (../shared/data)
# when present, else the project's sample corpus.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh --test >/dev/null
cargo build --release -p data-prep --bin data-prep --example bench_tokenize >/dev/null
if [ -d ../shared/data/corpus ]; then cfg=configs/corpus-shared.toml; tok=runs/real/tokenizer.json
else cfg=configs/corpus-demo.toml; tok=runs/demo/tokenizer.json; fi
[ -f "$tok" ] || target/release/data-prep tokenizer --config "$cfg" --vocab-size 16000 --out "$tok" >/dev/null
mkdir -p runs/bench-tokenize
docs=runs/bench-tokenize/docs.jsonl
ours=$(target/release/examples/bench_tokenize --config "$cfg" --tokenizer "$tok" --dump "$docs" | tail -n 1)
theirs=$(.venv/bin/python scripts/bench/bench_tokenize.py "$tok" "$docs" | tail -n 1)
echo "$ours"
echo "$theirs"
.venv/bin/python - "$ours" "$theirs" <<'PY'
import json, sys
o, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert o["tokens"] == t["tokens"], ("different token counts", o["tokens"], t["tokens"])
print(f"speed-up (tokens/s, data-prep / Python tokenizers): {o['tokens_per_sec'] / t['tokens_per_sec']:.2f}x "
      f"on {o['documents']:,} documents, {o['tokens']:,} tokens")
PY
