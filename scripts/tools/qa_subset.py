#!/usr/bin/env python3
"""The first N answerable questions of a SQuAD-format file (all when N is 0), with their contexts:
what scripts/experiment-e5*.sh train and score on.

    qa_subset.py SRC DST N
"""
import json
import sys


def main():
    src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data, kept = json.load(open(src, encoding="utf-8")), 0
    articles = []
    for a in data["data"]:
        paragraphs = []
        for p in a["paragraphs"]:
            qas = [q for q in p["qas"] if q["answers"] and not q.get("is_impossible")]
            if n:
                qas = qas[:max(0, n - kept)]
            kept += len(qas)
            if qas:
                paragraphs.append({"context": p["context"], "qas": qas})
        if paragraphs:
            articles.append({"title": a.get("title", ""), "paragraphs": paragraphs})
    json.dump({"version": "1.1", "data": articles}, open(dst, "w", encoding="utf-8"), ensure_ascii=False)


if __name__ == "__main__":
    main()
