#!/usr/bin/env python3
"""Writes the sample terminology the project ships for entity linking, from the same value lists the
sample notes are made of (scripts/make_sample_data.py), all invented for medqa:

  data/sample/terms/stroke-values.csv   id,term,language: one concept per categorical value of the stroke
                                        catalogue (sex, findings, complications, ...) with its name in the
                                        seven languages, and one per drug (apixaban, alteplase, ...) under
                                        its local names without dose
  data/sample/terms/answers-gold.jsonl  {lang, answer, concept_id} for every value string the notes use:
                                        the concept an extracted answer should link to

Run from anywhere: python3 scripts/make_sample_terms.py (the same bytes every time).
"""
import csv
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_sample_data import DRUGS, LANGS, ROOT, WORDS  # noqa: E402

DRUG_CONCEPTS = {"thrombolysis_drug"}  # drug names without dose already


def drug_name(value: str) -> str:
    """`apixaban 5 mg twice daily` → `apixaban`: the words before the first number."""
    return re.split(r"\s+\d", value, maxsplit=1)[0].strip()


def main():
    out = ROOT / "data" / "sample" / "terms"
    out.mkdir(parents=True, exist_ok=True)
    rows, gold = [], []
    for concept, by_lang in WORDS.items():
        for i, en in enumerate(by_lang["en"]):
            cid = f"drug/{en}" if concept in DRUG_CONCEPTS else f"{concept}/{i}"
            for lang in LANGS:
                rows.append((cid, by_lang[lang][i], lang))
                gold.append({"lang": lang, "answer": by_lang[lang][i], "concept_id": cid})
    drug_rows = {}
    for concept, by_lang in DRUGS.items():
        for i, en in enumerate(by_lang["en"]):
            cid = f"drug/{drug_name(en)}"
            for lang in LANGS:
                drug_rows[(cid, lang)] = drug_name(by_lang[lang][i])
                gold.append({"lang": lang, "answer": by_lang[lang][i], "concept_id": cid})
    rows += [(cid, term, lang) for (cid, lang), term in drug_rows.items()]
    with open(out / "stroke-values.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "term", "language"])
        w.writerows(rows)
    seen = set()
    with open(out / "answers-gold.jsonl", "w", encoding="utf-8") as f:
        for g in gold:
            key = (g["lang"], g["answer"])
            if key not in seen:
                seen.add(key)
                f.write(json.dumps(g, ensure_ascii=False) + "\n")
    concepts = len({r[0] for r in rows})
    print(f"terms: {len(rows)} labels of {concepts} concepts; gold links: {len(seen)} answers; in {out}")


if __name__ == "__main__":
    main()
