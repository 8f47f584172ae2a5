#!/usr/bin/env python3
"""The transformers side of scripts/experiment-e5.sh: extractive QA fine-tuning with transformers' Trainer
on run_qa.py's features, and prediction with utils_qa-style post-processing, at the hyperparameters medqa
gets.

    qa_trainer_reference.py train --model DIR --train F [F ...] --out DIR --seed S --learning-rate LR
        --epochs E --batch B --warmup-steps W --weight-decay WD --max-seq-length L --doc-stride S
        [--freeze PATTERN ...] [--threads T] [--max-steps N] [--log-history FILE] [--mask-padding]
    qa_trainer_reference.py predict --model DIR --data F [F ...] --out DIR [DIR ...] --max-seq-length L
        --doc-stride S [--bf16 | --fp16]

Both run on CUDA when there is a GPU (--bf16: autocast, as the Trainer's bf16); predict answers each
--data file into the --out directory at the same place in the list (one model load for them all).

Features and post-processing are bench_qa.py's (run_qa.py's windows and labels, top-20 × top-20 spans of
at most 30 tokens); answers are scored by medqa's `eval score`, the same scorer as medqa's runs.
"""
import argparse
import fnmatch
import json
import os
import sys

import numpy as np
import torch
from transformers import Trainer, TrainingArguments, XLMRobertaForQuestionAnswering

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import bench_qa  # noqa: E402  (scripts/bench/bench_qa.py: run_qa's features, utils_qa's post-processing)


class Windows(torch.utils.data.Dataset):
    def __init__(self, ids, mask, starts, ends):
        self.rows = (ids, mask, starts, ends)

    def __len__(self):
        return len(self.rows[0])

    def __getitem__(self, i):
        ids, mask, starts, ends = self.rows
        return {"input_ids": ids[i], "attention_mask": mask[i], "start_positions": starts[i],
                "end_positions": ends[i]}


class PaddingOutOfLoss(Trainer):
    """run_qa's loss with padding left out of the start/end softmax, as medqa computes it (--mask-padding)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        starts, ends = inputs.pop("start_positions"), inputs.pop("end_positions")
        out = model(**inputs)
        pad = inputs["attention_mask"] == 0
        ce = torch.nn.functional.cross_entropy
        loss = (ce(out.start_logits.masked_fill(pad, float("-inf")), starts)
                + ce(out.end_logits.masked_fill(pad, float("-inf")), ends)) / 2
        return (loss, out) if return_outputs else loss


def train(a):
    torch.set_num_threads(a.threads)
    tok = bench_qa.tokenizer(os.path.join(a.model, "tokenizer.json"))
    examples = [e for f in a.train for e in bench_qa.load_examples(f)]
    data = Windows(*bench_qa.train_features(tok, examples, a.max_seq_length, a.doc_stride))
    torch.manual_seed(a.seed)  # the fresh QA head, as medqa draws it from train.seed
    model = XLMRobertaForQuestionAnswering.from_pretrained(a.model)
    frozen = 0
    for name, p in model.named_parameters():
        if any(fnmatch.fnmatchcase(name, pat) for pat in a.freeze):
            p.requires_grad = False
            frozen += p.numel()
    args = TrainingArguments(
        output_dir=a.out, per_device_train_batch_size=a.batch, learning_rate=a.learning_rate,
        gradient_accumulation_steps=a.gradient_accumulation_steps,
        num_train_epochs=a.epochs, warmup_steps=a.warmup_steps, weight_decay=a.weight_decay,
        lr_scheduler_type="linear", max_grad_norm=1.0, seed=a.seed, data_seed=a.seed,
        max_steps=a.max_steps or -1, logging_steps=1 if a.log_history else 50,
        save_strategy="no", report_to=[], use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0,
        bf16=a.bf16, fp16=a.fp16)
    trainer = PaddingOutOfLoss if a.mask_padding else Trainer
    run = trainer(model=model, args=args, train_dataset=data)
    result = run.train()
    if a.log_history:  # every step's loss, grad_norm (before clipping) and learning_rate
        with open(a.log_history, "w", encoding="utf-8") as f:
            json.dump([h for h in run.state.log_history if "loss" in h], f)
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(os.path.join(a.out, "final"))
    bench_qa.copy_tokenizer(os.path.join(a.model, "tokenizer.json"), os.path.join(a.out, "final"))
    print(json.dumps({"impl": "transformers", "windows": len(data), "steps": result.global_step,
                      "train_loss": result.training_loss, "frozen_parameters": frozen}))


def predict(a):
    if len(a.data) != len(a.out):
        sys.exit(f"predict: {len(a.data)} --data files but {len(a.out)} --out directories")
    torch.set_num_threads(a.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = XLMRobertaForQuestionAnswering.from_pretrained(a.model).eval().to(device)
    tok = bench_qa.tokenizer(os.path.join(a.model, "tokenizer.json"))
    for data, out_dir in zip(a.data, a.out):
        examples = bench_qa.load_examples(data)
        enc = bench_qa.encode(tok, examples, a.max_seq_length, a.doc_stride)
        ids, mask = torch.tensor(enc["input_ids"]), torch.tensor(enc["attention_mask"])
        starts, ends = [], []
        with torch.no_grad(), torch.autocast(device, dtype=torch.float16 if a.fp16 else torch.bfloat16, enabled=a.bf16 or a.fp16):
            for b in range(0, len(ids), 64):
                out = model(input_ids=ids[b:b + 64].to(device), attention_mask=mask[b:b + 64].to(device))
                starts.append(out.start_logits.float().cpu().numpy()), ends.append(out.end_logits.float().cpu().numpy())
        answers = bench_qa.postprocess(examples, enc, np.concatenate(starts), np.concatenate(ends))
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "predictions.json"), "w", encoding="utf-8") as f:
            json.dump(answers, f, ensure_ascii=False)
        print(json.dumps({"impl": "transformers", "data": data, "questions": len(examples), "windows": len(ids)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--train", nargs="+", required=True)
    t.add_argument("--seed", type=int, required=True)
    t.add_argument("--learning-rate", type=float, required=True)
    t.add_argument("--epochs", type=float, required=True)
    t.add_argument("--batch", type=int, required=True)
    t.add_argument("--gradient-accumulation-steps", type=int, default=1)
    t.add_argument("--warmup-steps", type=int, default=0)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--freeze", nargs="*", default=[])
    t.add_argument("--max-steps", type=int, default=0, help="stop after N optimizer steps (0: by --epochs)")
    t.add_argument("--log-history", help="write each step's loss, grad_norm and learning_rate here")
    t.add_argument("--mask-padding", action="store_true",
                   help="leave padding out of the start/end softmax, as medqa does (a diagnostic)")
    p = sub.add_parser("predict")
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--out", nargs="+", required=True)
    t.add_argument("--out", required=True)
    for s in (t, p):
        s.add_argument("--model", required=True)
        s.add_argument("--bf16", action="store_true")
        s.add_argument("--fp16", action="store_true")
        s.add_argument("--max-seq-length", type=int, required=True)
        s.add_argument("--doc-stride", type=int, required=True)
        s.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    (train if a.cmd == "train" else predict)(a)


if __name__ == "__main__":
    main()
