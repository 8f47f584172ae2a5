"""How transformers' Trainer trains XLM-R's masked-LM head under gradient accumulation.

One step (learning rate 0) over the same 8 sequences, labelling 1 to 10 positions each, as batch 8 × 1,
4 × 2 and 2 × 4; prints the logged loss and gradient norm of each, with the model's own loss and with a
`compute_loss_func` that divides the summed loss by the step's `num_items_in_batch` (the Trainer's intended
token mean). medqa's loop gives the one-batch figures for all three (crates/model/tests/
token_weighted_loss.rs). In transformers 5.24, XLMRobertaForMaskedLM's forward takes **kwargs but computes
a plain mean, so the Trainer neither passes it the step's token count nor divides by the accumulation
steps: loss and gradient grow with the accumulation (huggingface/transformers#47688).

Usage: .venv/bin/python scripts/tools/transformers_mlm_accumulation.py
"""

import tempfile

import torch
import torch.nn.functional as F
import transformers
from torch.utils.data import SequentialSampler
from transformers import Trainer, TrainingArguments, XLMRobertaConfig, XLMRobertaForMaskedLM
from transformers.trainer_callback import PrinterCallback

LABELLED = [1, 9, 2, 10, 1, 7, 3, 10]


class InOrder(Trainer):
    def _get_train_sampler(self, *args, **kwargs):
        return SequentialSampler(self.train_dataset)


def token_mean(outputs, labels, num_items_in_batch=None):
    logits = outputs.logits.flatten(0, 1).float()
    return F.cross_entropy(logits, labels.flatten(), ignore_index=-100, reduction="sum") / num_items_in_batch


def one_step(config, data, batch, accum, out, loss_func=None):
    torch.manual_seed(1)
    model = XLMRobertaForMaskedLM(config)
    args = TrainingArguments(
        output_dir=out, per_device_train_batch_size=batch, gradient_accumulation_steps=accum,
        max_steps=1, learning_rate=0.0, max_grad_norm=0.0, logging_steps=1, save_strategy="no",
        report_to=[], use_cpu=True, disable_tqdm=True,
    )
    trainer = InOrder(model=model, args=args, train_dataset=data, compute_loss_func=loss_func)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    logged = next(h for h in trainer.state.log_history if "loss" in h)
    return float(logged["loss"]), float(logged["grad_norm"])


def main():
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=20, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    ids = torch.randint(4, 50, (len(LABELLED), 10))
    labels = torch.full_like(ids, -100)
    for i, n in enumerate(LABELLED):
        labels[i, :n] = ids[i].roll(-1)[:n]
    data = [{"input_ids": ids[i], "labels": labels[i]} for i in range(len(LABELLED))]
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    print("batch × accumulation | loss | grad_norm | loss, token mean | grad_norm, token mean")
    with tempfile.TemporaryDirectory() as out:
        for batch, accum in [(8, 1), (4, 2), (2, 4)]:
            loss, norm = one_step(config, data, batch, accum, out)
            mean_loss, mean_norm = one_step(config, data, batch, accum, out, token_mean)
            print(f"{batch} × {accum} | {loss:.4f} | {norm:.4f} | {mean_loss:.4f} | {mean_norm:.4f}")


if __name__ == "__main__":
    main()
