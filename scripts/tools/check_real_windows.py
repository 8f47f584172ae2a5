#!/usr/bin/env python3
"""Compares medqa's QA windows with run_qa.py's on the real XLM-R tokenizer.

    check_real_windows.py --tokenizer DIR --data SET.json --ours windows.jsonl \
        [--max-seq-length 384] [--doc-stride 128]

`windows.jsonl` (written by qa-finetune's real_encoder test) has one line per question: its id and
windows, each with input ids, the character offsets of context tokens (null elsewhere) and the start/end
labels. The reference is run_qa.py's prepare_train_features / prepare_validation_features with the
tokenizer run_qa.py gets, `AutoTokenizer.from_pretrained(DIR)` (DIR holds tokenizer.json and
tokenizer_config.json; question left-stripped, truncation only_second, overflowing windows
with the stride, no padding). Labels are compared where the file's first answer sits where it says
(medqa moves misplaced answers to their text; run_qa trusts the offset) and where run_qa's walk to the
end token stays inside the context (medqa stops at the context's end where run_qa overruns).

Prints one JSON line: questions, windows, tokens and label comparisons, and mismatches (up to 5 shown).
Exits non-zero on any mismatch.
"""
import argparse
import json
import sys

from transformers import AutoTokenizer


def questions(path):
    data = json.load(open(path, encoding="utf-8"))
    for ai, article in enumerate(data["data"]):
        for pi, p in enumerate(article["paragraphs"]):
            for qi, qa in enumerate(p["qas"]):
                qid = qa.get("id")
                qid = f"a{ai}-p{pi}-q{qi}" if qid is None else str(qid)
                yield qid, qa["question"], p["context"], qa.get("answers") or [], qa.get("is_impossible") is True


def labels(enc, i, answer):
    """run_qa.py's prepare_train_features for window i; None where medqa deliberately differs."""
    offsets, seq = enc["offset_mapping"][i], enc.sequence_ids(i)
    if answer is None:
        return (0, 0)
    start_char = answer["answer_start"]
    end_char = start_char + len(answer["text"])
    ts = 0
    while seq[ts] != 1:
        ts += 1
    te = len(enc["input_ids"][i]) - 1
    while seq[te] != 1:
        te -= 1
    if not (offsets[ts][0] <= start_char and offsets[te][1] >= end_char):
        return (0, 0)
    while ts < len(offsets) and offsets[ts][0] <= start_char:
        ts += 1
    while offsets[te][1] >= end_char:
        te -= 1
    start, end = ts - 1, te + 1
    if seq[start] != 1 or seq[end] != 1:
        return None  # run_qa's walk left the context
    return (start, end)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", required=True, help="a directory with tokenizer.json and tokenizer_config.json")
    ap.add_argument("--data", required=True)
    ap.add_argument("--ours", required=True)
    ap.add_argument("--max-seq-length", type=int, default=384)
    ap.add_argument("--doc-stride", type=int, default=128)
    args = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    if not tok.is_fast:
        raise SystemExit(f"{args.tokenizer}: transformers built a slow tokenizer; run_qa.py needs a fast one")
    ours = {}
    for line in open(args.ours, encoding="utf-8"):
        row = json.loads(line)
        ours[row["id"]] = row["windows"]
    counts = {"questions": 0, "windows": 0, "tokens": 0, "labels_compared": 0, "labels_skipped": 0}
    mismatches = []
    for qid, question, context, answers, impossible in questions(args.data):
        counts["questions"] += 1
        enc = tok(question.lstrip(), context, truncation="only_second", max_length=args.max_seq_length,
                  stride=args.doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True)
        mine = ours.get(qid)
        if mine is None or len(mine) != len(enc["input_ids"]):
            mismatches.append({"id": qid, "what": "window count", "ours": None if mine is None else len(mine),
                               "run_qa": len(enc["input_ids"])})
            continue
        first = None if impossible or not answers else answers[0]
        as_given = first is not None and first["answer_start"] >= 0 and \
            context[first["answer_start"]:first["answer_start"] + len(first["text"])] == first["text"]
        for i, w in enumerate(mine):
            counts["windows"] += 1
            ids = enc["input_ids"][i]
            counts["tokens"] += len(ids)
            seq = enc.sequence_ids(i)
            offs = [list(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][i], seq)]
            if w["input_ids"] != ids:
                mismatches.append({"id": qid, "window": i, "what": "input ids"})
            elif w["offsets"] != offs:
                at = next(k for k, (a, b) in enumerate(zip(w["offsets"], offs)) if a != b)
                mismatches.append({"id": qid, "window": i, "what": "offsets", "token": at,
                                   "ours": w["offsets"][at], "run_qa": offs[at]})
            if first is not None and not as_given:
                counts["labels_skipped"] += 1
                continue
            want = labels(enc, i, first)
            if want is None:
                counts["labels_skipped"] += 1
                continue
            counts["labels_compared"] += 1
            if tuple(w["labels"]) != want:
                mismatches.append({"id": qid, "window": i, "what": "labels", "ours": w["labels"], "run_qa": want})
    counts["mismatches"] = len(mismatches)
    counts["first_mismatches"] = mismatches[:5]
    print(json.dumps(counts, ensure_ascii=False))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
