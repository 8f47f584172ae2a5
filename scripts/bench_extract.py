#!/usr/bin/env python3
"""The reference for scripts/bench-extract.sh: concept extraction the way a transformers user writes it,
a `question-answering` pipeline over every document × concept (the document's language's question),
with the same window settings and answer length as the model's medqa.json, batched, one table out.

    python3 scripts/bench_extract.py --model DIR --concepts configs/concepts-stroke.toml --docs DIR --out F.csv
"""
import argparse
import csv
import json
import os
import time
import tomllib

import torch
from transformers import AutoModelForQuestionAnswering, PreTrainedTokenizerFast, pipeline

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--concepts", required=True)
ap.add_argument("--docs", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
start = time.perf_counter()
settings = json.load(open(os.path.join(a.model, "medqa.json")))
tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(a.model, "tokenizer.json"), bos_token="<s>",
                              eos_token="</s>", sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                              pad_token="<pad>", mask_token="<mask>")
qa = pipeline("question-answering", model=AutoModelForQuestionAnswering.from_pretrained(a.model), tokenizer=tok,
              device="cpu")
concepts = tomllib.load(open(a.concepts, "rb"))["concepts"]
docs = []
for name in sorted(os.listdir(a.docs)):
    if name.endswith(".txt"):
        stem = name[:-4]
        doc_id, lang = stem.rsplit(".", 1)
        docs.append((doc_id, lang, open(os.path.join(a.docs, name), encoding="utf-8").read()))
pairs, keys = [], []
for doc_id, lang, text in docs:
    for c in concepts:
        q = c["questions"].get(lang) or c["questions"]["en"]
        pairs.append({"question": q, "context": text})
        keys.append((doc_id, lang, c["id"]))
answers = qa(pairs, batch_size=a.batch, max_seq_len=settings["max_seq_length"], doc_stride=settings["doc_stride"],
             max_question_len=settings["max_query_length"], max_answer_len=settings["postprocess"]["max_answer_length"],
             top_k=1)
with open(a.out, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["doc_id", "doc_lang", "concept", "answer", "start", "end", "probability"])
    for (doc_id, lang, cid), ans in zip(keys, answers):
        w.writerow([doc_id, lang, cid, ans["answer"], ans["start"], ans["end"], ans["score"]])
seconds = time.perf_counter() - start
print(f"transformers pipeline: {len(pairs)} questions in {seconds:.2f} s = {len(pairs) / seconds:.1f} questions/s")
