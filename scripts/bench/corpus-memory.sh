#!/usr/bin/env bash
# Peak memory of `data-prep corpus` against the size of one input file: the corpus must stream, so
# its peak resident set stays near-flat however large the file (issue 14). Prints, for each size, the
# file size, documents, wall time, peak RSS and RSS ÷ file size.
#
#   scripts/bench/corpus-memory.sh            0.3 GB and 3 GB files (about 5 GB of /tmp at peak)
#   scripts/bench/corpus-memory.sh 0.1 1      other sizes, in GB
#
# The file is the sample corpus's English sentences in paragraphs of ten lines (about 1.3 kB a document),
# numbered so that there are 50,000 distinct documents, repeated to the size asked: every document is
# read and cleaned and hashed, the repeats are dropped as duplicates, so the documents kept (and the
# exact-dedup set, 16 bytes each, which is what grows with distinct documents) are the same at every
# size and what grows with the file is what must stream. Tokenization is the demo's tokenizer.
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(0.3 3)
bin=target/release/data-prep
[ -x "$bin" ] || { echo "build first: cargo build --release -p data-prep" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
tok=runs/demo/tokenizer.json
if [ ! -f "$tok" ]; then
  tok=$work/tokenizer.json
  "$bin" tokenizer --config configs/corpus-demo.toml --vocab-size 1000 --out "$tok" >/dev/null
fi
printf '%-8s %12s %12s %9s %14s %10s\n' size file_MB documents seconds peak_RSS_MiB RSS/file
for gb in "${sizes[@]}"; do
  file=$work/big.txt
  python3 - "$file" "$gb" <<'PY'
import sys
path, gb = sys.argv[1], float(sys.argv[2])
lines = [l.strip() for l in open("data/sample/corpus/en.txt", encoding="utf-8") if l.strip()]
target, n, written = int(gb * 1e9), 0, 0
with open(path, "w", encoding="utf-8") as f:
    while written < target:
        k = n % 50000
        block = "".join(f"{k}.{i} {lines[(k + i) % len(lines)]}\n" for i in range(10)) + "\n"
        f.write(block)
        written += len(block.encode())
        n += 1
PY
  cat > "$work/c.toml" <<TOML
tokenizer = "$tok"
validation_permille = 10
[[sources]]
name = "big"
path = "$file"
format = "text"
unit = "paragraph"
language = "en"
TOML
  rm -rf "$work/out"
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/rss" "$bin" corpus --config "$work/c.toml" --out "$work/out" > "$work/summary"
  end=$(date +%s.%N)
  kib=$(tail -n 1 "$work/rss")
  bytes=$(stat -c %s "$file")
  docs=$(awk '/^en\/big\// { d += $2 } END { print d }' "$work/summary")
  python3 -c "import sys; gb,b,d,s,k=sys.argv[1:]; b=int(b); k=int(k); print(f'{gb+\" GB\":<8} {b/1e6:12.0f} {int(d):12d} {float(s):9.1f} {k/1024:14.0f} {k*1024/b:10.3f}')" \
    "$gb" "$bytes" "$docs" "$(echo "$end - $start" | bc)" "$kib"
  rm -f "$file"
done
