#!/usr/bin/env python3
"""The reference for scripts/bench/extract.sh: concept extraction the way a transformers user writes it
(transformers 5 has no question-answering pipeline any more): every document × concept as a question in the
document's language, run_qa.py's windows (padded to max length), batched forward passes of
XLMRobertaForQuestionAnswering, utils_qa.py's n-best post-processing (scripts/bench/bench_qa.py's), one CSV out.

    python3 scripts/bench/bench_extract.py --model DIR --concepts configs/concepts-stroke.toml --docs DIR --out F.csv
"""
import argparse
import csv
import json
import os
import time

import numpy as np
import torch
from transformers import XLMRobertaForQuestionAnswering

import bench_qa

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--concepts", required=True)
ap.add_argument("--docs", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--device", default="cpu")
ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
a = ap.parse_args()
torch.set_num_threads(a.threads)
model = XLMRobertaForQuestionAnswering.from_pretrained(a.model).to(a.device).eval()
tok = bench_qa.tokenizer(os.path.join(a.model, "tokenizer.json"))
if a.concepts.endswith(".json"):  # for machines whose Python predates tomllib (3.11)
    concepts = json.load(open(a.concepts, encoding="utf-8"))["concepts"]
else:
    import tomllib
    concepts = tomllib.load(open(a.concepts, "rb"))["concepts"]
examples = []
for name in sorted(os.listdir(a.docs)):
    if name.endswith(".txt"):
        doc_id, lang = name[:-4].rsplit(".", 1)
        text = open(os.path.join(a.docs, name), encoding="utf-8").read()
        for c in concepts:
            q = c["questions"].get(lang) or c["questions"]["en"]
            examples.append({"id": f"{doc_id}\t{lang}\t{c['id']}", "question": q, "context": text, "answers": []})
enc = bench_qa.encode(tok, examples)
ids, mask = torch.tensor(enc["input_ids"]), torch.tensor(enc["attention_mask"])
starts, ends = [], []
with torch.no_grad(), bench_qa.autocast(a):
    for b in range(0, len(ids), a.batch):
        out = model(input_ids=ids[b:b + a.batch].to(a.device), attention_mask=mask[b:b + a.batch].to(a.device))
        starts.append(out.start_logits.float().cpu().numpy()), ends.append(out.end_logits.float().cpu().numpy())
scores = {}
answers = bench_qa.postprocess(examples, enc, np.concatenate(starts), np.concatenate(ends), scores)
with open(a.out, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["doc_id", "doc_lang", "concept", "answer", "score"])
    for e in examples:
        w.writerow(e["id"].split("\t") + [answers[e["id"]], scores.get(e["id"], "")])
checked = time.perf_counter()
bench_qa.check_windows(tok, examples, enc)
# The check is not run_qa's work: bench/extract.sh takes its seconds off the process's time.
print(f"transformers loop: {len(examples)} questions, {len(ids)} windows; "
      f"check_seconds {time.perf_counter() - checked:.3f}")
