#!/usr/bin/env bash
# MLM training throughput, medqa against transformers, same shapes, same machine, same run:
# hidden 256, 4 layers, 4 heads, intermediate 1024, vocabulary 250,002, batch 16×128, 2 threads.
# Extra arguments go to both (e.g. --steps 5, --device cuda). Prints both results and the ratio, then
# medqa once more with glibc's allocator defaults (MEDQA_HOST_MEMORY=system; see
# crates/model/src/host_memory.rs), so that the share of the speed-up that comes from keeping freed host
# blocks is in the log too.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh --test >/dev/null
cargo build --release -p mlm-pretrain --example bench_step >/dev/null
ours=$(target/release/examples/bench_step "$@")
theirs=$(.venv/bin/python scripts/bench/bench_mlm.py "$@")
system=$(MEDQA_HOST_MEMORY=system target/release/examples/bench_step "$@")
echo "$ours"
echo "$theirs"
echo "$system"
.venv/bin/python - "$ours" "$theirs" "$system" <<'PY'
import json, sys
o, t, s = (json.loads(a) for a in sys.argv[1:4])
assert o["params"] == t["params"], (o["params"], t["params"])
print(f"speed-up (tokens/s, medqa / transformers): {o['tokens_per_sec'] / t['tokens_per_sec']:.2f}x; "
      f"peak memory {o['peak_rss_mib']:.0f} MiB vs {t['peak_rss_mib']:.0f} MiB")
print(f"with glibc's allocator defaults (MEDQA_HOST_MEMORY=system): speed-up "
      f"{s['tokens_per_sec'] / t['tokens_per_sec']:.2f}x; peak memory {s['peak_rss_mib']:.0f} MiB")
PY
