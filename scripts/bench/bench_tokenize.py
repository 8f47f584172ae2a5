#!/usr/bin/env python3
"""The reference for scripts/bench/tokenize.sh: Python `tokenizers` batch encoding of the same texts
with the same tokenizer.json (no special tokens), best of N runs; prints one JSON line."""
import json
import sys
import time

from tokenizers import Tokenizer

tok = Tokenizer.from_file(sys.argv[1])
texts = [json.loads(line) for line in open(sys.argv[2], encoding="utf-8")]
repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 3
best, tokens = float("inf"), 0
for _ in range(repeat):
    start = time.perf_counter()
    ids = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
    best = min(best, time.perf_counter() - start)
    tokens = sum(len(i) for i in ids)
size = sum(len(t.encode("utf-8")) for t in texts)
print(json.dumps({"impl": "tokenizers (Python)", "documents": len(texts), "tokens": tokens, "seconds": best,
                  "tokens_per_sec": tokens / best, "mb_per_sec": size / 1e6 / best}))
