#!/usr/bin/env python3
"""N answerable questions of a SQuAD-format file (all when N is 0), with their contexts: what
scripts/experiment-e5*.sh train and score on.

    qa_subset.py SRC DST N [--spread]

By default the first N in file order. With --spread, round by round across contexts (every context's
first question, then every context's second, …) until N: a set of a few contexts with many questions each
(Romanian COVID-QA has 4 contexts for the first 100 held-out questions) is then scored on as many
contexts as N allows, not on whichever come first. The questions keep their file order.
"""
import argparse
import json


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("n", type=int)
    ap.add_argument("--spread", action="store_true")
    a = ap.parse_args()
    data = json.load(open(a.src, encoding="utf-8"))
    answerable = [[[q for q in p["qas"] if q["answers"] and not q.get("is_impossible")] for p in art["paragraphs"]]
                  for art in data["data"]]
    flat = [qas for art in answerable for qas in art]
    # How many questions each paragraph keeps, in file order.
    take = [len(qas) for qas in flat]
    if a.n:
        take, left = [0] * len(flat), a.n
        if a.spread:
            rounds = max((len(qas) for qas in flat), default=0)
            for r in range(rounds):
                for i, qas in enumerate(flat):
                    if left and r < len(qas):
                        take[i] += 1
                        left -= 1
        else:
            for i, qas in enumerate(flat):
                take[i] = min(len(qas), left)
                left -= take[i]
    articles, i = [], 0
    for art, paragraphs in zip(data["data"], answerable):
        kept = []
        for p, qas in zip(art["paragraphs"], paragraphs):
            if take[i]:
                kept.append({"context": p["context"], "qas": qas[:take[i]]})
            i += 1
        if kept:
            articles.append({"title": art.get("title", ""), "paragraphs": kept})
    json.dump({"version": "1.1", "data": articles}, open(a.dst, "w", encoding="utf-8"), ensure_ascii=False)


if __name__ == "__main__":
    main()
