#!/usr/bin/env python3
"""Writes the reference fixtures that the model crate's parity tests compare against.

Run with the project's venv after `scripts/setup.sh --test`:

    .venv/bin/python scripts/make_fixtures.py [--out crates/model/tests/fixtures]

Everything is derived from fixed seeds, so re-running gives the same files (up to library versions,
which are recorded in `versions.json`). Outputs:

- `tokenizer/`: a small XLM-R-format SentencePiece Unigram tokenizer (`<s>`=0 `<pad>`=1 `</s>`=2 `<unk>`=3,
  `<mask>` last), trained on the multilingual medical sentences below and converted by `transformers`.
- `tokenization.json`: single texts and (question, context) pairs in Latin, Cyrillic and Greek scripts,
  encoded by the fast tokenizer as `run_qa.py` does it (`only_second` truncation, stride, overflow windows,
  character offsets, sequence ids).
- `models/<name>/`: random XLM-R checkpoints of different shapes, every parameter perturbed so that a missed
  bias or LayerNorm term shows up, holding the encoder plus both the MLM and the QA head; and
  `expected.safetensors` with padded input batches and `transformers`' last hidden states, MLM logits and
  QA start/end logits for them.
- `variants/`: the first model saved as `XLMRobertaModel` (no `roberta.` prefix, with pooler), and the
  checkpoint in fp16 and bf16, with the outputs `transformers` computes from those files.
- `qa.json`: QA examples (answerable, unanswerable, long contexts) with `run_qa.py`'s training and evaluation
  features computed from the fast tokenizer (windows, ids, context offsets, start/end labels), random logits
  per window, and the answers, n-best lists and null odds of `utils_qa.py`'s post-processing for SQuAD v1
  and v2 settings.
- `param_counts.json`: parameter counts of the xlm-roberta-base and -large shapes (built on the meta device).
- `train/adamw.safetensors`: 100 steps of `torch.optim.AdamW` (decay and no-decay groups) under the linear
  warm-up schedule and `clip_grad_norm_`, from fixed gradients: initial and final parameters, the gradient
  of every step, the learning rate and the pre-clipping norm each step; `train/schedules.json`: the
  multipliers of `transformers`' linear, cosine and constant warm-up schedules.
"""

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import sentencepiece as spm
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import (
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
    XLMRobertaForQuestionAnswering,
    XLMRobertaModel,
    XLMRobertaTokenizer,
)

SENTENCES = [
    # en
    "The patient was admitted with acute ischemic stroke and left-sided hemiparesis.",
    "NIHSS score on admission was 14; onset-to-door time 95 minutes.",
    "Thrombolysis with alteplase was started after the CT scan excluded haemorrhage.",
    "History of atrial fibrillation, arterial hypertension and type 2 diabetes mellitus.",
    "Blood pressure 165/95 mmHg, glucose 8.4 mmol/L, heart rate 92 bpm.",
    "Medication at discharge: apixaban 5 mg twice daily, atorvastatin 40 mg.",
    # es
    "El paciente ingresó por un ictus isquémico agudo con hemiparesia izquierda.",
    "Antecedentes de fibrilación auricular, hipertensión arterial y diabetes mellitus tipo 2.",
    "Se inició trombólisis con alteplasa tras descartar hemorragia en la tomografía.",
    "Tensión arterial 160/90 mmHg; glucemia 150 mg/dl; la puntuación NIHSS fue de 12.",
    # ro
    "Pacientul a fost internat cu accident vascular cerebral ischemic acut.",
    "Antecedente de fibrilație atrială, hipertensiune arterială și diabet zaharat de tip 2.",
    "Tratament la externare: anticoagulant oral și statină; tensiunea arterială 150/85 mmHg.",
    "Scorul NIHSS la internare a fost 9; s-a efectuat tromboliză intravenoasă.",
    # pl
    "Pacjent został przyjęty z powodu ostrego udaru niedokrwiennego mózgu.",
    "W wywiadzie migotanie przedsionków, nadciśnienie tętnicze i cukrzyca typu 2.",
    "Zastosowano leczenie trombolityczne alteplazą; ciśnienie tętnicze 170/100 mmHg.",
    # cs
    "Pacient byl přijat pro akutní ischemickou cévní mozkovou příhodu.",
    "V anamnéze fibrilace síní, arteriální hypertenze a diabetes mellitus 2. typu.",
    "Byla zahájena trombolýza alteplázou; krevní tlak 155/90 mmHg, glykémie 7,9 mmol/l.",
    # bg
    "Пациентът е приет с остър исхемичен мозъчен инсулт и лявостранна хемипареза.",
    "Анамнеза за предсърдно мъждене, артериална хипертония и захарен диабет тип 2.",
    "Започната е тромболиза с алтеплаза; кръвно налягане 160/95 mmHg, кръвна захар 9,1 mmol/l.",
    # el
    "Ο ασθενής εισήχθη με οξύ ισχαιμικό αγγειακό εγκεφαλικό επεισόδιο.",
    "Ιστορικό κολπικής μαρμαρυγής, αρτηριακής υπέρτασης και σακχαρώδους διαβήτη τύπου 2.",
    "Χορηγήθηκε θρομβόλυση με αλτεπλάση· αρτηριακή πίεση 150/90 mmHg, γλυκόζη 140 mg/dl.",
]

PAIRS = [
    ("What was the NIHSS score on admission?", " ".join(SENTENCES[0:6])),
    ("   ¿Qué antecedentes tiene el paciente?", " ".join(SENTENCES[6:10])),
    ("Care este scorul NIHSS la internare?", " ".join(SENTENCES[10:14])),
    ("Jakie ciśnienie tętnicze zmierzono?", " ".join(SENTENCES[14:17]) * 2),
    ("Jaký byl krevní tlak?", " ".join(SENTENCES[17:20])),
    ("Какво е кръвното налягане?", " ".join(SENTENCES[20:23]) + "\n\n" + " ".join(SENTENCES[20:23])),
    ("Ποια είναι η αρτηριακή πίεση;", "  ".join(SENTENCES[23:26])),
    ("Which anticoagulant? ", "Ünïcödé   spaces\tand\ttabs, emoji 🙂 and CJK 脑卒中 in a note. " + SENTENCES[5]),
]
SINGLE_TEXTS = SENTENCES[::3] + ["", "   ", "ţ ş ț ș Ş Ţ — straße ﬁ ½"]

# (name, shape); every model differs from the others in hidden size, heads, layers, eps and positions.
MODEL_SHAPES = [
    ("tiny-h32-l2", dict(hidden_size=32, num_attention_heads=2, num_hidden_layers=2, intermediate_size=64,
                         layer_norm_eps=1e-5, max_position_embeddings=66, type_vocab_size=1)),
    ("tiny-h40-l3", dict(hidden_size=40, num_attention_heads=4, num_hidden_layers=3, intermediate_size=64,
                         layer_norm_eps=1e-12, max_position_embeddings=130, type_vocab_size=2)),
    ("tiny-h64-l1", dict(hidden_size=64, num_attention_heads=8, num_hidden_layers=1, intermediate_size=96,
                         layer_norm_eps=1e-6, max_position_embeddings=98, type_vocab_size=1)),
]


def train_tokenizer(out: Path, vocab_size: int) -> XLMRobertaTokenizer:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(SENTENCES * 3) + "\n", encoding="utf-8")
        # The layout of XLM-R's sentencepiece.bpe.model (unk, bos, eos); the converter adds fairseq's id shift.
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(Path(tmp) / "sentencepiece.bpe"), model_type="unigram",
            vocab_size=vocab_size, character_coverage=1.0, hard_vocab_limit=False, seed_sentencepiece_size=10000,
            num_threads=1, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2,
        )
        # XLMRobertaTokenizer(vocab_file=...) silently builds a 5-token vocabulary; from_pretrained converts properly.
        tok = XLMRobertaTokenizer.from_pretrained(tmp)
        tok.save_pretrained(out)
    return XLMRobertaTokenizer.from_pretrained(out)


def tokenization_cases(tok) -> dict:
    singles = []
    for text in SINGLE_TEXTS:
        enc = tok(text, return_offsets_mapping=True)
        singles.append({"text": text, "input_ids": enc["input_ids"], "offsets": enc["offset_mapping"]})
    pairs = []
    # Small windows overflow on every pair; run_qa.py's defaults (384/128) hold whole contexts (a few suffice).
    for max_length, stride, subset in [(48, 16, PAIRS), (64, 24, PAIRS), (384, 128, PAIRS[:3])]:
        for question, context in subset:
            q = question.lstrip()  # run_qa.py strips the question's leading white space
            enc = tok(q, context, truncation="only_second", max_length=max_length, stride=stride,
                      return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)
            windows = []
            for i in range(len(enc["input_ids"])):
                windows.append({
                    "input_ids": enc["input_ids"][i],
                    "offsets": enc["offset_mapping"][i],
                    "sequence_ids": enc.sequence_ids(i),
                })
            pairs.append({"question": q, "context": context, "max_length": max_length, "stride": stride,
                          "windows": windows})
    return {"singles": singles, "pairs": pairs}


def perturb_(model: torch.nn.Module, gen: torch.Generator) -> None:
    # Default init leaves biases at 0 and LayerNorm at (1, 0): a bug in either would pass unnoticed.
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)


def batch_for(cfg: XLMRobertaConfig, gen: torch.Generator, seq_len: int):
    batch = 3
    ids = torch.randint(4, cfg.vocab_size, (batch, seq_len), generator=gen)
    ids[:, 0] = 0
    lengths = [seq_len, seq_len - 5, 4]
    mask = torch.zeros(batch, seq_len, dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, n - 1] = 2
        ids[b, n:] = cfg.pad_token_id
        mask[b, :n] = 1
    tt = torch.zeros_like(ids)
    if cfg.type_vocab_size > 1:
        tt[:, seq_len // 2:] = 1
        tt = tt * mask
    return ids, mask, tt


def expected_outputs(model_dir: Path, ids, mask, tt) -> dict:
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}
    mlm = XLMRobertaForMaskedLM.from_pretrained(model_dir).eval()
    qa = XLMRobertaForQuestionAnswering.from_pretrained(model_dir).eval()
    with torch.no_grad():
        o = mlm(input_ids=ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True)
        out["last_hidden_state"] = o.hidden_states[-1]
        out["mlm_logits"] = o.logits
        q = qa(input_ids=ids, attention_mask=mask, token_type_ids=tt)
        out["start_logits"] = q.start_logits
        out["end_logits"] = q.end_logits
    return {k: v.contiguous() for k, v in out.items()}


def make_models(out: Path, vocab_size: int, gen: torch.Generator) -> None:
    for name, shape in MODEL_SHAPES:
        cfg = XLMRobertaConfig(vocab_size=vocab_size, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                               hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                               **shape)
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
        mlm = XLMRobertaForMaskedLM(cfg)
        qa = XLMRobertaForQuestionAnswering(cfg)
        perturb_(mlm, gen)
        perturb_(qa.qa_outputs, gen)
        qa.roberta.load_state_dict(mlm.roberta.state_dict())
        d = out / "models" / name
        if d.exists():
            shutil.rmtree(d)
        mlm.save_pretrained(d)
        # One file with both heads: each head class loads it, reporting the other head's keys as unexpected.
        state = load_file(d / "model.safetensors")
        state.update({k: v.contiguous() for k, v in qa.state_dict().items() if k.startswith("qa_outputs.")})
        save_file(state, d / "model.safetensors", metadata={"format": "pt"})
        seq_len = min(11, cfg.max_position_embeddings - 2)
        ids, mask, tt = batch_for(cfg, gen, seq_len)
        save_file(expected_outputs(d, ids, mask, tt), d / "expected.safetensors")


def make_variants(out: Path) -> None:
    """Other ways the same weights arrive: a bare XLMRobertaModel with pooler, and half-precision files."""
    src = out / "models" / MODEL_SHAPES[0][0]
    exp = load_file(src / "expected.safetensors")
    ids, mask, tt = exp["input_ids"], exp["attention_mask"], exp["token_type_ids"]

    base_dir = out / "variants" / "base-with-pooler"
    if base_dir.exists():
        shutil.rmtree(base_dir)
    base = XLMRobertaModel.from_pretrained(src, add_pooling_layer=True)
    gen = torch.Generator().manual_seed(7)
    perturb_(base.pooler, gen)
    base.save_pretrained(base_dir)
    base = XLMRobertaModel.from_pretrained(base_dir).eval()
    with torch.no_grad():
        o = base(input_ids=ids, attention_mask=mask, token_type_ids=tt)
    save_file({"input_ids": ids, "attention_mask": mask, "token_type_ids": tt,
               "last_hidden_state": o.last_hidden_state.contiguous(), "pooler_output": o.pooler_output.contiguous()},
              base_dir / "expected.safetensors")

    for dtype_name, dtype in [("fp16", torch.float16), ("bf16", torch.bfloat16)]:
        d = out / "variants" / dtype_name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        shutil.copy(src / "config.json", d / "config.json")
        state = {k: v.to(dtype) for k, v in load_file(src / "model.safetensors").items()}
        save_file(state, d / "model.safetensors", metadata={"format": "pt"})
        # transformers upcasts on load when asked for fp32: the reference is the fp32 model of the rounded weights.
        mlm = XLMRobertaForMaskedLM.from_pretrained(d, dtype=torch.float32).eval()
        qa = XLMRobertaForQuestionAnswering.from_pretrained(d, dtype=torch.float32).eval()
        with torch.no_grad():
            o = mlm(input_ids=ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True)
            q = qa(input_ids=ids, attention_mask=mask, token_type_ids=tt)
        expected = {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt,
                    "last_hidden_state": o.hidden_states[-1].contiguous(),
                    "start_logits": q.start_logits.contiguous(), "end_logits": q.end_logits.contiguous()}
        if dtype_name == "fp16":  # the MLM head's weights load by the same path; one variant checks it
            expected["mlm_logits"] = o.logits.contiguous()
        save_file(expected, d / "expected.safetensors")


def param_counts() -> dict:
    counts = {}
    shapes = {
        "xlm-roberta-base": dict(hidden_size=768, num_attention_heads=12, num_hidden_layers=12,
                                 intermediate_size=3072),
        "xlm-roberta-large": dict(hidden_size=1024, num_attention_heads=16, num_hidden_layers=24,
                                  intermediate_size=4096),
    }
    for name, shape in shapes.items():
        cfg = XLMRobertaConfig(vocab_size=250002, max_position_embeddings=514, type_vocab_size=1,
                               layer_norm_eps=1e-5, pad_token_id=1, **shape)
        entry = {"config": cfg.to_diff_dict()}
        with torch.device("meta"):
            for cls in (XLMRobertaModel, XLMRobertaForMaskedLM, XLMRobertaForQuestionAnswering):
                entry[cls.__name__] = sum(p.numel() for p in cls(cfg).parameters())
        counts[name] = entry
    return counts


QA_CASES = [
    # (question, context index in PAIRS, answer text or None, occurrence)
    ("What was the NIHSS score on admission?", 0, "14", 0),
    ("What was started after the CT scan?", 0, "Thrombolysis with alteplase", 0),
    ("¿Qué se inició tras descartar hemorragia?", 1, "trombólisis con alteplasa", 0),
    ("Care a fost scorul NIHSS?", 2, "9", 0),
    ("Jakie ciśnienie tętnicze zmierzono?", 3, "170/100 mmHg", 1),
    ("Jaký byl krevní tlak?", 4, "155/90 mmHg", 0),
    ("Какво е кръвното налягане?", 5, "160/95 mmHg", 1),
    ("Ποια είναι η γλυκόζη;", 6, "140 mg/dl", 0),
    ("Which anticoagulant at discharge?", 7, "apixaban 5 mg twice daily", 0),
    ("Was the patient pregnant?", 0, None, 0),
    ("   " + "Which medication was given at discharge and in which dose and how often? " * 3, 0, "apixaban", 0),
]


def qa_examples():
    examples = []
    for i, (q, ci, ans, occ) in enumerate(QA_CASES):
        context = PAIRS[ci][1]
        answers = []
        if ans is not None:
            start = -1
            for _ in range(occ + 1):
                start = context.index(ans, start + 1)
            answers.append({"text": ans, "answer_start": start})
        examples.append({"id": f"q{i}", "question": q, "context": context, "answers": answers})
    return examples


def run_qa_features(tok, examples, max_length, stride, max_query_length):
    """prepare_train_features / prepare_validation_features of run_qa.py (no padding), plus the question
    cut to max_query_length tokens (our addition; run_qa.py has none)."""
    feats = []
    for ei, ex in enumerate(examples):
        q = ex["question"].lstrip()
        enc_q = tok(q, add_special_tokens=False, return_offsets_mapping=True)
        if len(enc_q["input_ids"]) > max_query_length:
            q = q[: enc_q["offset_mapping"][max_query_length - 1][1]]
        enc = tok(q, ex["context"], truncation="only_second", max_length=max_length, stride=stride,
                  return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)
        for i in range(len(enc["input_ids"])):
            ids, offsets, seq = enc["input_ids"][i], enc["offset_mapping"][i], enc.sequence_ids(i)
            start_pos = end_pos = 0
            overrun = False
            if ex["answers"]:
                start_char = ex["answers"][0]["answer_start"]
                end_char = start_char + len(ex["answers"][0]["text"])
                ts = 0
                while seq[ts] != 1:
                    ts += 1
                te = len(ids) - 1
                while seq[te] != 1:
                    te -= 1
                if offsets[ts][0] <= start_char and offsets[te][1] >= end_char:
                    while ts < len(offsets) and offsets[ts][0] <= start_char:
                        ts += 1
                    start_pos = ts - 1
                    while offsets[te][1] >= end_char:
                        te -= 1
                    end_pos = te + 1
                    overrun = seq[start_pos] != 1
            context_offsets = [o if s == 1 else None for o, s in zip(offsets, seq)]
            feats.append({"example": ei, "input_ids": ids, "context_offsets": context_offsets,
                          "start_position": start_pos, "end_position": end_pos, "run_qa_overrun": overrun})
    return feats


def utils_qa_postprocess(examples, feats, logits, n_best_size, max_answer_length, v2, threshold):
    """postprocess_qa_predictions of utils_qa.py."""
    import numpy as np
    by_ex = {}
    for fi, f in enumerate(feats):
        by_ex.setdefault(f["example"], []).append(fi)
    answers, nbest, odds = {}, {}, {}
    for ei, ex in enumerate(examples):
        prelim, min_null = [], None
        for fi in by_ex.get(ei, []):
            s_log, e_log = np.array(logits[fi][0], dtype=np.float32), np.array(logits[fi][1], dtype=np.float32)
            om = feats[fi]["context_offsets"]
            null_score = s_log[0] + e_log[0]
            if min_null is None or min_null["score"] > null_score:
                min_null = {"offsets": (0, 0), "score": null_score, "start_logit": s_log[0], "end_logit": e_log[0]}
            for si in np.argsort(s_log)[-1: -n_best_size - 1: -1].tolist():
                for ej in np.argsort(e_log)[-1: -n_best_size - 1: -1].tolist():
                    if si >= len(om) or ej >= len(om) or om[si] is None or om[ej] is None:
                        continue
                    if ej < si or ej - si + 1 > max_answer_length:
                        continue
                    prelim.append({"offsets": (om[si][0], om[ej][1]), "score": s_log[si] + e_log[ej],
                                   "start_logit": s_log[si], "end_logit": e_log[ej]})
        if v2 and min_null is not None:
            prelim.append(min_null)
            null = min_null["score"]
        preds = sorted(prelim, key=lambda x: x["score"], reverse=True)[:n_best_size]
        if v2 and min_null is not None and not any(p["offsets"] == (0, 0) for p in preds):
            preds.append(min_null)
        for p in preds:
            o = p["offsets"]
            p["text"] = ex["context"][o[0]: o[1]]
        if len(preds) == 0 or (len(preds) == 1 and preds[0]["text"] == ""):
            preds.insert(0, {"text": "empty", "start_logit": 0.0, "end_logit": 0.0, "score": 0.0, "offsets": None})
        scores = np.array([p.pop("score") for p in preds])
        exp = np.exp(scores - np.max(scores))
        probs = exp / exp.sum()
        for pr, p in zip(probs, preds):
            p["probability"] = float(pr)
            p["start_logit"] = float(p["start_logit"])
            p["end_logit"] = float(p["end_logit"])
            p["offsets"] = list(p["offsets"]) if p["offsets"] is not None else None
        if not v2:
            answers[ex["id"]] = preds[0]["text"]
        else:
            i = 0
            while preds[i]["text"] == "":
                i += 1
            best = preds[i]
            diff = float(null - best["start_logit"] - best["end_logit"])
            odds[ex["id"]] = diff
            answers[ex["id"]] = "" if diff > threshold else best["text"]
        nbest[ex["id"]] = preds
    return {"answers": answers, "nbest": nbest, "null_odds": odds}


def make_qa_fixtures(out: Path, tok) -> None:
    examples = qa_examples()
    feats = run_qa_features(tok, examples, max_length=128, stride=48, max_query_length=24)
    gen = torch.Generator().manual_seed(5)
    # Three decimals keep the file small; both sides read them as float32.
    logits = [[[round(x, 3) for x in (torch.randn(len(f["input_ids"]), generator=gen) * 3).tolist()]
               for _ in range(2)] for f in feats]
    settings = [dict(n_best_size=20, max_answer_length=30, v2=False, threshold=0.0),
                dict(n_best_size=5, max_answer_length=4, v2=True, threshold=0.0),
                dict(n_best_size=20, max_answer_length=30, v2=True, threshold=2.5)]
    results = [{"settings": st, **utils_qa_postprocess(examples, feats, logits, st["n_best_size"],
                                                       st["max_answer_length"], st["v2"], st["threshold"])}
               for st in settings]
    qa = {"max_seq_length": 128, "doc_stride": 48, "max_query_length": 24, "examples": examples,
          "features": feats, "logits": logits, "postprocess": results}
    (out / "qa.json").write_text(json.dumps(qa, ensure_ascii=False, separators=(",", ":")))


def make_train_fixtures(out: Path) -> None:
    from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                              get_linear_schedule_with_warmup)
    gen = torch.Generator().manual_seed(99)
    shapes = {"dense.weight": (6, 5), "dense.bias": (6,), "LayerNorm.weight": (6,), "LayerNorm.bias": (6,)}
    steps, warmup = 100, 10
    params = {n: torch.nn.Parameter(torch.randn(s, generator=gen)) for n, s in shapes.items()}
    init = {f"init.{n}": p.detach().clone() for n, p in params.items()}
    # Large enough that clipping at 1.0 acts on some steps and not on others.
    grads = {n: torch.randn((steps, *s), generator=gen) * torch.linspace(0.05, 0.6, steps).view(-1, *[1] * len(s))
             for n, s in shapes.items()}
    decay = [params["dense.weight"]]
    no_decay = [p for n, p in params.items() if n != "dense.weight"]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-3, betas=(0.9, 0.999), eps=1e-8)
    sched = get_linear_schedule_with_warmup(opt, warmup, steps)
    lrs, norms = [], []
    for t in range(steps):
        for n, p in params.items():
            p.grad = grads[n][t].clone()
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)))
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    tensors = {**init, **{f"grad.{n}": g.contiguous() for n, g in grads.items()},
               **{f"final.{n}": p.detach().clone() for n, p in params.items()},
               "lr": torch.tensor(lrs, dtype=torch.float64), "grad_norm": torch.tensor(norms, dtype=torch.float64)}
    (out / "train").mkdir(exist_ok=True)
    save_file(tensors, out / "train" / "adamw.safetensors")

    def multipliers(factory, **kw):
        p = torch.nn.Parameter(torch.zeros(1))
        o = torch.optim.SGD([p], lr=1.0)
        s = factory(o, **kw)
        values = []
        for _ in range(steps + 5):
            values.append(o.param_groups[0]["lr"])
            o.step()
            s.step()
        return values
    schedules = {
        "steps": steps, "warmup": warmup,
        "linear": multipliers(get_linear_schedule_with_warmup, num_warmup_steps=warmup, num_training_steps=steps),
        "cosine": multipliers(get_cosine_schedule_with_warmup, num_warmup_steps=warmup, num_training_steps=steps),
        "constant": multipliers(get_constant_schedule_with_warmup, num_warmup_steps=warmup),
    }
    (out / "train" / "schedules.json").write_text(json.dumps(schedules))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "crates/model/tests/fixtures")
    ap.add_argument("--vocab-size", type=int, default=500)
    args = ap.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    tok = train_tokenizer(out / "tokenizer", args.vocab_size)
    vocab_size = len(tok)
    assert tok.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>"]) == [0, 1, 2, 3]
    assert tok.convert_tokens_to_ids("<mask>") == vocab_size - 1
    # Only tokenizer.json is needed (and committed); the other files duplicate it.
    for f in (out / "tokenizer").iterdir():
        if f.name != "tokenizer.json":
            f.unlink()
    (out / "tokenization.json").write_text(json.dumps(tokenization_cases(tok), ensure_ascii=False, separators=(",", ":")))

    make_models(out, vocab_size, gen)
    make_variants(out)
    make_train_fixtures(out)
    make_qa_fixtures(out, tok)
    (out / "param_counts.json").write_text(json.dumps(param_counts(), indent=1))
    (out / "versions.json").write_text(json.dumps({
        "torch": torch.__version__, "transformers": transformers.__version__,
        "tokenizers": __import__("tokenizers").__version__, "sentencepiece": spm.__version__,
    }, indent=1))
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"fixtures written to {out} ({total / 1e6:.2f} MB, vocab {vocab_size})")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
