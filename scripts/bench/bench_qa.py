#!/usr/bin/env python3
"""The reference for scripts/bench/qa.sh: transformers' extractive QA as run_qa.py does it.

  make-model DIR --tokenizer T [shape]   a random XLMRobertaForQuestionAnswering both sides load
  train --model DIR --data F [--steps N --batch B --threads T]
      run_qa.py's training features (windows padded to max_length), AdamW, N steps; prints features/s
  predict --model DIR --data F --out DIR [--batch B --threads T]
      run_qa.py's evaluation features, forward passes, utils_qa-style post-processing (top-20 starts ×
      top-20 ends per window, spans outside the context or longer than 30 rejected), predictions.json;
      prints the seconds from reading the data to writing the predictions

Written for this benchmark from the behaviour run_qa.py documents; no code of it is copied.
"""
import argparse
import collections
import json
import os
import resource
import shutil
import time

import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaForQuestionAnswering

MAX_LEN, STRIDE, N_BEST, MAX_ANSWER = 384, 128, 20, 30


def tokenizer(path):
    """The tokenizer medqa builds from the tokenizer.json at `path`: with a tokenizer_config.json beside it,
    what AutoTokenizer.from_pretrained makes of the directory; without one, the file as written."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isfile(os.path.join(folder, "tokenizer_config.json")):
        return AutoTokenizer.from_pretrained(folder)
    return PreTrainedTokenizerFast(tokenizer_file=path, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")


def copy_tokenizer(path, folder):
    """Copies the tokenizer.json at `path` into `folder`, with the tokenizer_config.json beside it if any."""
    shutil.copy(path, os.path.join(folder, "tokenizer.json"))
    config = os.path.join(os.path.dirname(os.path.abspath(path)), "tokenizer_config.json")
    if os.path.isfile(config):
        shutil.copy(config, os.path.join(folder, "tokenizer_config.json"))


def load_examples(path):
    out = []
    for article in json.load(open(path, encoding="utf-8"))["data"]:
        for p in article["paragraphs"]:
            for q in p["qas"]:
                out.append({"id": str(q["id"]), "question": q["question"], "context": p["context"],
                            "answers": [a for a in q.get("answers", [])]})
    return out


def encode(tok, examples, max_len=MAX_LEN, stride=STRIDE):
    return tok([e["question"].lstrip() for e in examples], [e["context"] for e in examples],
               truncation="only_second", max_length=max_len, stride=stride, return_overflowing_tokens=True,
               return_offsets_mapping=True, padding="max_length")


def check_windows(tok, examples, enc):
    """Stops unless every example's windows reach the end of its context, as run_qa.py's do: tokenizers
    0.23.1 and 0.23.2 return one overflow window per pair, whatever the context's length."""
    reach = collections.defaultdict(int)
    for i, e in enumerate(enc["overflow_to_sample_mapping"]):
        seq = enc.sequence_ids(i)
        ends = [o[1] for k, o in enumerate(enc["offset_mapping"][i]) if seq[k] == 1]
        reach[e] = max(reach[e], max(ends, default=0))
    full = {}
    for e, ex in enumerate(examples):
        c = ex["context"]
        if c not in full:
            offsets = tok(c, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            full[c] = offsets[-1][1] if offsets else 0
        if reach[e] < full[c]:
            import tokenizers
            raise SystemExit(f"the tokenizer's windows stop at character {reach[e]} of example {ex['id']}'s "
                             f"{full[c]}: tokenizers {tokenizers.__version__} drops overflow windows "
                             "(0.23.1 and 0.23.2 do); use 0.23.3 or later")


def train_features(tok, examples, max_len=MAX_LEN, stride=STRIDE):
    enc = encode(tok, examples, max_len, stride)
    check_windows(tok, examples, enc)
    starts, ends = [], []
    for i, offsets in enumerate(enc["offset_mapping"]):
        seq = enc.sequence_ids(i)
        ex = examples[enc["overflow_to_sample_mapping"][i]]
        if not ex["answers"]:
            starts.append(0), ends.append(0)
            continue
        a = ex["answers"][0]
        s_char, e_char = a["answer_start"], a["answer_start"] + len(a["text"])
        first = seq.index(1)
        last = len(seq) - 1 - seq[::-1].index(1)
        if not (offsets[first][0] <= s_char and offsets[last][1] >= e_char):
            starts.append(0), ends.append(0)
            continue
        s = first
        while s <= last and offsets[s][0] <= s_char:
            s += 1
        e = last
        while e >= first and offsets[e][1] >= e_char:
            e -= 1
        starts.append(s - 1), ends.append(e + 1)
    return (torch.tensor(enc["input_ids"]), torch.tensor(enc["attention_mask"]), torch.tensor(starts),
            torch.tensor(ends))


def autocast(a):
    return torch.autocast(device_type=torch.device(a.device).type, dtype=torch.bfloat16,
                          enabled=a.precision == "bf16")


def make_model(a):
    os.makedirs(a.dir, exist_ok=True)
    vocab = tokenizer(a.tokenizer).backend_tokenizer.get_vocab_size()
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(vocab_size=vocab, hidden_size=a.hidden, num_hidden_layers=a.layers,
                           num_attention_heads=a.heads, intermediate_size=a.intermediate,
                           max_position_embeddings=MAX_LEN + 2, type_vocab_size=1)
    XLMRobertaForQuestionAnswering(cfg).save_pretrained(a.dir)
    copy_tokenizer(a.tokenizer, a.dir)
    # max_query_length = MAX_LEN: run_qa.py never cuts a question, so neither may medqa here (its default,
    # 64, gave one COVID-QA question with a 70-token question one window less).
    settings = {"max_seq_length": MAX_LEN, "doc_stride": STRIDE, "max_query_length": MAX_LEN,
                "postprocess": {"n_best_size": N_BEST, "max_answer_length": MAX_ANSWER,
                                "version_2_with_negative": False, "null_score_diff_threshold": 0.0}}
    json.dump(settings, open(os.path.join(a.dir, "medqa.json"), "w"))


def train(a):
    tok = tokenizer(os.path.join(a.model, "tokenizer.json"))
    ids, mask, starts, ends = train_features(tok, load_examples(a.data))
    model = XLMRobertaForQuestionAnswering.from_pretrained(a.model).to(a.device).train()
    ids, mask, starts, ends = (t.to(a.device) for t in (ids, mask, starts, ends))
    named = list(model.named_parameters())
    no_decay = lambda n: "bias" in n or "LayerNorm" in n
    opt = torch.optim.AdamW([{"params": [p for n, p in named if not no_decay(n)], "weight_decay": 0.01},
                             {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0}], lr=3e-5,
                            # What Trainer uses on CUDA with torch ≥ 2.8 (optim="adamw_torch_fused").
                            fused=torch.device(a.device).type == "cuda")
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for step in range(a.steps):
        b = order[(step * a.batch) % len(ids):][:a.batch].to(a.device)
        with autocast(a):
            loss = model(input_ids=ids[b], attention_mask=mask[b], start_positions=starts[b],
                         end_positions=ends[b]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    loss.item()  # waits for the device
    seconds = time.perf_counter() - start
    print(json.dumps({"impl": "transformers", "features": len(ids), "steps": a.steps,
                      "features_per_sec": a.steps * a.batch / seconds, "seconds": seconds,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def postprocess(examples, enc, starts, ends, best_scores=None):
    """Answer text per example id; `best_scores`, when given, receives each best answer's start + end logit."""
    by_example = collections.defaultdict(list)
    for i, e in enumerate(enc["overflow_to_sample_mapping"]):
        by_example[e].append(i)
    answers = {}
    for e, ex in enumerate(examples):
        candidates = []
        for i in by_example[e]:
            seq = enc.sequence_ids(i)
            offsets = [o if seq[k] == 1 else None for k, o in enumerate(enc["offset_mapping"][i])]
            s_log, e_log = starts[i], ends[i]
            for s in np.argsort(s_log)[-1:-N_BEST - 1:-1].tolist():
                for t in np.argsort(e_log)[-1:-N_BEST - 1:-1].tolist():
                    if s >= len(offsets) or t >= len(offsets) or offsets[s] is None or offsets[t] is None:
                        continue
                    if t < s or t - s + 1 > MAX_ANSWER:
                        continue
                    candidates.append((float(s_log[s] + e_log[t]), offsets[s][0], offsets[t][1]))
        candidates.sort(key=lambda c: c[0], reverse=True)
        top = candidates[:N_BEST]
        if top:
            scores = np.array([c[0] for c in top])
            probs = np.exp(scores - scores.max())
            probs /= probs.sum()
            answers[ex["id"]] = ex["context"][top[0][1]:top[0][2]]
            if best_scores is not None:
                best_scores[ex["id"]] = top[0][0]
        else:
            answers[ex["id"]] = ""
    return answers


def predict(a):
    model = XLMRobertaForQuestionAnswering.from_pretrained(a.model).to(a.device).eval()
    start = time.perf_counter()
    tok = tokenizer(os.path.join(a.model, "tokenizer.json"))
    examples = load_examples(a.data)
    enc = encode(tok, examples)
    ids, mask = torch.tensor(enc["input_ids"]), torch.tensor(enc["attention_mask"])
    s_all, e_all = [], []
    with torch.no_grad(), autocast(a):
        for b in range(0, len(ids), a.batch):
            out = model(input_ids=ids[b:b + a.batch].to(a.device), attention_mask=mask[b:b + a.batch].to(a.device))
            s_all.append(out.start_logits.float().cpu().numpy()), e_all.append(out.end_logits.float().cpu().numpy())
    answers = postprocess(examples, enc, np.concatenate(s_all), np.concatenate(e_all))
    os.makedirs(a.out, exist_ok=True)
    json.dump(answers, open(os.path.join(a.out, "predictions.json"), "w", encoding="utf-8"), ensure_ascii=False)
    seconds = time.perf_counter() - start
    check_windows(tok, examples, enc)
    # Not run_qa's work: bench/qa.sh takes check_seconds off the process's time.
    print(json.dumps({"impl": "transformers", "questions": len(examples), "windows": len(ids),
                      "seconds": seconds, "check_seconds": time.perf_counter() - start - seconds, "questions_per_sec": len(examples) / seconds,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-model")
    m.add_argument("dir")
    m.add_argument("--tokenizer", required=True)
    for k, v in dict(hidden=256, layers=4, heads=4, intermediate=1024).items():
        m.add_argument(f"--{k}", type=int, default=v)
    for name in ["train", "predict"]:
        p = sub.add_parser(name)
        p.add_argument("--model", required=True)
        p.add_argument("--data", required=True)
        p.add_argument("--out")
        p.add_argument("--steps", type=int, default=30)
        p.add_argument("--batch", type=int, default=16 if name == "train" else 32)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--device", default="cpu")
        p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    a = ap.parse_args()
    if a.cmd != "make-model":
        torch.set_num_threads(a.threads)
    {"make-model": make_model, "train": train, "predict": predict}[a.cmd](a)
