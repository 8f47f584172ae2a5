#!/usr/bin/env python3
"""What a new batch shape costs a CUDA training step, per attention backend (PyTorch alone).

For the xlm-roberta-base shape in bf16 (16 windows, a padding mask as QA batches have), times the first
and the second forward + backward at each sequence length, with SDPA's default choice and with each
backend forced; each backend gets lengths of its own so that no cache is shared between them.

    python3 scripts/bench/probe_shape_cost.py [--vocab 16000]
"""
import argparse
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import XLMRobertaConfig, XLMRobertaForQuestionAnswering

ap = argparse.ArgumentParser()
ap.add_argument("--vocab", type=int, default=16000)
a = ap.parse_args()
torch.manual_seed(0)
cfg = XLMRobertaConfig(vocab_size=a.vocab, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                       intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1)
model = XLMRobertaForQuestionAnswering(cfg).cuda().train()


def step(length):
    ids = torch.randint(5, a.vocab, (16, length), device="cuda")
    mask = torch.ones_like(ids)
    mask[::2, length - 8:] = 0
    zeros = torch.zeros(16, dtype=torch.long, device="cuda")
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(input_ids=ids, attention_mask=mask, start_positions=zeros, end_positions=zeros).loss
    loss.backward()
    torch.cuda.synchronize()
    return time.perf_counter() - start


step(384), step(384)  # CUDA context, cuBLAS handles, allocator
backends = {"default": None, "cudnn": SDPBackend.CUDNN_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "math": SDPBackend.MATH}
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
for n, (name, backend) in enumerate(backends.items()):
    firsts, seconds = [], []
    for length in (64 * k + 8 * (n + 1) for k in range(1, 6)):
        try:
            if backend is None:
                first, second = step(length), step(length)
            else:
                with sdpa_kernel([backend]):
                    first, second = step(length), step(length)
        except RuntimeError as e:
            print(f"{name}: {str(e).splitlines()[0]}")
            break
        firsts.append(first), seconds.append(second)
    if firsts:
        extra = sum(f - s for f, s in zip(firsts, seconds)) / len(firsts)
        print(f"{name:>9}: first step at a new length {1000 * sum(firsts) / len(firsts):7.1f} ms, "
              f"second {1000 * sum(seconds) / len(seconds):6.1f} ms: {1000 * extra:7.1f} ms a new shape")
