#!/usr/bin/env python3
"""Writes data/sample/qa/{train,dev}.json: SQuAD-format questions on the synthetic stroke notes in
data/sample/corpus (7 languages), with gold answers located in the notes.

Each language's file holds two cases: lines 1-9 (the first patient) and lines 10-15 (the second). The first
case's questions train, the second case's are the dev set. Every note is asked in its own language; the
training set also asks the first case in English (cross-lingual questions, as extraction does).
Deterministic; run from the project root: python3 scripts/make_sample_qa.py
"""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LANGS = ["bg", "cs", "el", "en", "es", "pl", "ro"]

QUESTIONS = {
    "onset_to_door": {"en": "What was the onset-to-door time?", "es": "¿Cuál fue el tiempo inicio-puerta?",
                      "ro": "Care a fost timpul debut-ușă?", "pl": "Jaki był czas od zachorowania do przyjęcia?",
                      "cs": "Jaká byla doba od vzniku příznaků do příjezdu?",
                      "bg": "Какво е времето от началото до вратата?", "el": "Ποιος ήταν ο χρόνος έναρξης-πόρτας;"},
    "nihss": {"en": "What was the NIHSS score on admission?", "es": "¿Cuál fue la puntuación NIHSS al ingreso?",
              "ro": "Care a fost scorul NIHSS la internare?", "pl": "Ile wynosiła skala NIHSS przy przyjęciu?",
              "cs": "Jaké bylo skóre NIHSS při přijetí?", "bg": "Какъв е скорът по NIHSS при приемането?",
              "el": "Ποια ήταν η βαθμολογία NIHSS κατά την εισαγωγή;"},
    "blood_pressure": {"en": "What was the blood pressure?", "es": "¿Cuál fue la tensión arterial?",
                       "ro": "Care a fost tensiunea arterială?", "pl": "Jakie było ciśnienie tętnicze?",
                       "cs": "Jaký byl krevní tlak?", "bg": "Какво е кръвното налягане?",
                       "el": "Ποια ήταν η αρτηριακή πίεση;"},
    "glucose": {"en": "What was the glucose level?", "es": "¿Cuál fue la glucemia?", "ro": "Care a fost glicemia?",
                "pl": "Jaka była glikemia?", "cs": "Jaká byla glykémie?", "bg": "Каква е кръвната захар?",
                "el": "Ποια ήταν η γλυκόζη;"},
    "anticoagulant": {"en": "Which anticoagulant was prescribed at discharge?",
                      "es": "¿Qué anticoagulante se prescribió al alta?",
                      "ro": "Ce anticoagulant a fost prescris la externare?",
                      "pl": "Jaki antykoagulant zalecono przy wypisie?",
                      "cs": "Jaké antikoagulancium bylo předepsáno při propuštění?",
                      "bg": "Какъв антикоагулант е предписан при изписването?",
                      "el": "Ποιο αντιπηκτικό χορηγήθηκε κατά την έξοδο;"},
    "heart_rate": {"en": "What was the heart rate?", "es": "¿Cuál fue la frecuencia cardiaca?",
                   "ro": "Care a fost frecvența cardiacă?", "pl": "Jakie było tętno?",
                   "cs": "Jaká byla tepová frekvence?", "bg": "Каква е сърдечната честота?",
                   "el": "Ποια ήταν η καρδιακή συχνότητα;"},
}

# (case, concept, line number (1-based), answer) per language.
ANSWERS = {
    "en": [(1, "onset_to_door", 2, "75 minutes"), (1, "nihss", 3, "12"), (1, "blood_pressure", 3, "178/96 mmHg"),
           (1, "glucose", 3, "7.9 mmol/L"), (1, "anticoagulant", 9, "apixaban 5 mg twice daily"),
           (2, "blood_pressure", 11, "162/88 mmHg"), (2, "heart_rate", 11, "104 bpm")],
    "es": [(1, "onset_to_door", 2, "75 minutos"), (1, "nihss", 3, "11"), (1, "blood_pressure", 3, "172/94 mmHg"),
           (1, "glucose", 3, "146 mg/dl"), (1, "anticoagulant", 9, "apixabán 5 mg cada 12 horas"),
           (2, "blood_pressure", 11, "158/86 mmHg"), (2, "heart_rate", 11, "98 lpm")],
    "ro": [(1, "onset_to_door", 2, "70 de minute"), (1, "nihss", 3, "13"), (1, "blood_pressure", 3, "176/98 mmHg"),
           (1, "glucose", 3, "152 mg/dl"), (1, "anticoagulant", 9, "apixaban 5 mg de două ori pe zi"),
           (2, "blood_pressure", 11, "160/90 mmHg"), (2, "heart_rate", 11, "102 bătăi pe minut")],
    "pl": [(1, "onset_to_door", 2, "70 minut"), (1, "nihss", 3, "12 punktów"), (1, "blood_pressure", 3, "180/100 mmHg"),
           (1, "glucose", 3, "8,1 mmol/l"), (1, "anticoagulant", 9, "apiksaban 5 mg dwa razy dziennie"),
           (2, "blood_pressure", 11, "165/90 mmHg"), (2, "heart_rate", 11, "100/min")],
    "cs": [(1, "onset_to_door", 2, "70 minut"), (1, "nihss", 3, "10"), (1, "blood_pressure", 3, "170/95 mmHg"),
           (1, "glucose", 3, "8,4 mmol/l"), (1, "anticoagulant", 9, "apixaban 5 mg dvakrát denně"),
           (2, "blood_pressure", 11, "158/92 mmHg"), (2, "heart_rate", 11, "96/min")],
    "bg": [(1, "onset_to_door", 2, "75 минути"), (1, "nihss", 3, "12"), (1, "blood_pressure", 3, "175/95 mmHg"),
           (1, "glucose", 3, "8,0 mmol/l"), (1, "anticoagulant", 9, "апиксабан 5 mg два пъти дневно"),
           (2, "blood_pressure", 11, "160/90 mmHg"), (2, "heart_rate", 11, "100 удара в минута")],
    "el": [(1, "onset_to_door", 2, "70 λεπτά"), (1, "nihss", 3, "11"), (1, "blood_pressure", 3, "174/96 mmHg"),
           (1, "glucose", 3, "150 mg/dl"), (1, "anticoagulant", 9, "απιξαμπάνη 5 mg δύο φορές την ημέρα"),
           (2, "blood_pressure", 11, "162/88 mmHg"), (2, "heart_rate", 11, "102/λεπτό")],
}
CASES = {1: range(0, 9), 2: range(9, 15)}


def main() -> None:
    splits = {"train": [], "dev": []}
    for lang in LANGS:
        lines = (ROOT / "data/sample/corpus" / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
        for case, rows in CASES.items():
            context = " ".join(lines[i] for i in rows)
            qas = []
            for c, concept, line_no, answer in ANSWERS[lang]:
                if c != case:
                    continue
                line = lines[line_no - 1]
                before = " ".join(lines[i] for i in rows if i < line_no - 1)
                start = len(before) + (1 if before else 0) + line.index(answer)
                assert context[start:start + len(answer)] == answer, (lang, concept)
                asked = [lang] + (["en"] if case == 1 and lang != "en" else [])
                for qlang in asked:
                    qas.append({"id": f"{lang}-case{case}-{concept}-{qlang}", "question": QUESTIONS[concept][qlang],
                                "answers": [{"text": answer, "answer_start": start}], "lang": lang,
                                "question_lang": qlang})
            split = "train" if case == 1 else "dev"
            splits[split].append({"title": f"{lang} case {case}", "lang": lang,
                                  "paragraphs": [{"context": context, "qas": qas}]})
    out = ROOT / "data/sample/qa"
    out.mkdir(parents=True, exist_ok=True)
    for split, articles in splits.items():
        n = sum(len(p["qas"]) for a in articles for p in a["paragraphs"])
        (out / f"{split}.json").write_text(json.dumps({"version": "1.1", "data": articles}, ensure_ascii=False,
                                                      indent=1) + "\n", encoding="utf-8")
        print(f"{split}: {n} questions")


if __name__ == "__main__":
    main()
