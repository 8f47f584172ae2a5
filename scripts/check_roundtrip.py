#!/usr/bin/env python3
"""Loads a model directory that medqa saved into `transformers` and compares outputs with medqa's.

    check_roundtrip.py MODEL_DIR OUTPUTS.safetensors [TEXTS.json]

MODEL_DIR must load with `from_pretrained` as the class named in its config's `architectures`, with no
missing, unexpected or mismatched keys. OUTPUTS holds `input_ids`, `attention_mask` and medqa's outputs
(`mlm_logits`, or `start_logits`/`end_logits`). TEXTS (optional) is a list of {"text", "input_ids"} (and
optionally "offsets") that the saved tokenizer, as `AutoTokenizer.from_pretrained` builds it, must
reproduce. Prints a JSON summary; exits 1 on any difference.
"""

import json
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file

TOL = 1e-5


def main() -> int:
    model_dir, outputs = Path(sys.argv[1]), Path(sys.argv[2])
    texts = json.loads(Path(sys.argv[3]).read_text()) if len(sys.argv) > 3 else []
    arch = json.loads((model_dir / "config.json").read_text())["architectures"][0]
    cls = getattr(transformers, arch)
    model, info = cls.from_pretrained(model_dir, output_loading_info=True)
    model.eval()
    problems = {k: sorted(str(x) for x in v) for k, v in info.items() if v}
    ours = load_file(outputs)
    with torch.no_grad():
        out = model(input_ids=ours["input_ids"], attention_mask=ours["attention_mask"])
    diffs = {}
    for name in ("mlm_logits", "start_logits", "end_logits", "last_hidden_state"):
        if name not in ours:
            continue
        theirs = {"mlm_logits": getattr(out, "logits", None)}.get(name, getattr(out, name, None))
        diffs[name] = float((theirs - ours[name]).abs().max())
    token_mismatches = []
    if texts:
        tok = transformers.AutoTokenizer.from_pretrained(model_dir)
        for case in texts:
            enc = tok(case["text"], return_offsets_mapping=True)
            ids, offsets = enc["input_ids"], [list(o) for o in enc["offset_mapping"]]
            if ids != case["input_ids"] or ("offsets" in case and offsets != case["offsets"]):
                token_mismatches.append({"text": case["text"], "transformers": [ids, offsets],
                                         "medqa": [case["input_ids"], case.get("offsets")]})
    ok = not problems and diffs and all(d <= TOL for d in diffs.values()) and not token_mismatches
    print(json.dumps({"architecture": arch, "load_problems": problems, "max_abs_diff": diffs,
                      "token_mismatches": token_mismatches, "ok": bool(ok)}, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
