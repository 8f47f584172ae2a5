#!/usr/bin/env python3
"""SQuAD v1.1 EM/F1 written for scripts/bench/eval.sh from the behaviour the official evaluate-v1.1.py
documents (lower-case, drop ASCII punctuation, drop a/an/the, collapse white space; token-bag F1; max
over gold answers; a question without a prediction scores 0). Not the official file, which cannot be
installed here; give its path as EVAL_SCRIPT to bench/eval.sh to time the real one.

  squad_v1_reference.py DATA.json PREDICTIONS.json   → {"exact_match": …, "f1": …}
"""
import collections
import json
import re
import string
import sys

PUNCT = set(string.punctuation)
ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalise(text):
    text = "".join(c for c in text.lower() if c not in PUNCT)
    return " ".join(ARTICLES.sub(" ", text).split())


def f1(prediction, gold):
    p, g = normalise(prediction).split(), normalise(gold).split()
    common = sum((collections.Counter(p) & collections.Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


data = json.load(open(sys.argv[1], encoding="utf-8"))["data"]
predictions = json.load(open(sys.argv[2], encoding="utf-8"))
em = f = total = 0
for article in data:
    for paragraph in article["paragraphs"]:
        for qa in paragraph["qas"]:
            total += 1
            if qa["id"] not in predictions:
                continue
            golds = [a["text"] for a in qa["answers"]]
            pred = predictions[qa["id"]]
            em += max(float(normalise(pred) == normalise(g)) for g in golds)
            f += max(f1(pred, g) for g in golds)
print(json.dumps({"exact_match": 100.0 * em / total, "f1": 100.0 * f / total}))
