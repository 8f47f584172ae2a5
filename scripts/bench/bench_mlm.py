#!/usr/bin/env python3
"""The reference MLM training step: transformers' XLMRobertaForMaskedLM + torch.optim.AdamW.

Same shapes and step as crates/mlm-pretrain/examples/bench_step.rs; prints one JSON line.
"""
import argparse
import json
import resource
import time

import torch
from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

ap = argparse.ArgumentParser()
for k, v in dict(hidden=256, layers=4, heads=4, intermediate=1024, vocab=250002, batch=16, seq=128,
                 threads=2, warmup=1, steps=3).items():
    ap.add_argument(f"--{k}", type=int, default=v)
ap.add_argument("--device", default="cpu")
ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
ap.add_argument("--profile", help="write torch.profiler's Chrome trace of the timed steps here")
ap.add_argument("--phases", default="false", help="accepted for bench_step's command line; ignored")
ap.add_argument("--gradient-checkpointing", default="off", choices=["off", "on"],
                help="Trainer's gradient_checkpointing=True: gradient_checkpointing_enable() on the model")
a, _ = ap.parse_known_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
cfg = XLMRobertaConfig(vocab_size=a.vocab, hidden_size=a.hidden, num_hidden_layers=a.layers,
                       num_attention_heads=a.heads, intermediate_size=a.intermediate,
                       max_position_embeddings=a.seq + 2, type_vocab_size=1)
model = XLMRobertaForMaskedLM(cfg).to(a.device).train()
if a.gradient_checkpointing == "on":
    model.gradient_checkpointing_enable()
decay = [p for n, p in model.named_parameters() if "bias" not in n and "LayerNorm" not in n and "layer_norm" not in n]
no_decay = [p for n, p in model.named_parameters() if not ("bias" not in n and "LayerNorm" not in n and "layer_norm" not in n)]
# fused on CUDA: what Trainer (run_mlm.py) uses there with torch ≥ 2.8 (optim="adamw_torch_fused").
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-4,
                        fused=torch.device(a.device).type == "cuda")
ids = torch.randint(4, a.vocab - 1, (a.batch, a.seq), device=a.device)
mask = torch.ones_like(ids)
timed = 0.0
prof = None
for step in range(a.warmup + a.steps):
    if step == a.warmup and a.profile:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.device(a.device).type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        prof = torch.profiler.profile(activities=activities, record_shapes=True)
        prof.start()
    start = time.perf_counter()
    chosen = torch.rand(a.batch, a.seq, device=a.device) < 0.15
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    inputs = ids.masked_fill(chosen, a.vocab - 1)
    opt.zero_grad()
    with torch.autocast(device_type=torch.device(a.device).type, dtype=torch.bfloat16,
                        enabled=a.precision == "bf16"):
        loss = model(input_ids=inputs, attention_mask=mask, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    loss.item()
    if step >= a.warmup:
        timed += time.perf_counter() - start
if prof is not None:
    prof.stop()
    prof.export_chrome_trace(a.profile)
print(json.dumps({"impl": "transformers", "device": a.device, "precision": a.precision,
                  "gradient_checkpointing": a.gradient_checkpointing == "on", "tokens_per_sec": a.batch * a.seq * a.steps / timed,
                  "seconds_per_step": timed / a.steps,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "params": sum(p.numel() for p in model.parameters())}))
