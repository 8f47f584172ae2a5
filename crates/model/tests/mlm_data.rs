//! Sequences from shards and dynamic masking.

mod common;

use model::batch::pad_batch;
use model::mlm::{
    labelled_positions, pad_positions, position_bound, Masker, MaskingConfig, Sequences, IGNORE,
};
use model::shards::{Corpus, ShardManifest, ShardWriter, FORMAT};
use model::{Pretrained, XlmRobertaConfig, XlmRobertaForMaskedLM, XlmrTokenizer};
use tch::{Device, Kind, Tensor};

fn tokenizer() -> XlmrTokenizer {
    XlmrTokenizer::from_file(&common::fixtures().join("tokenizer")).unwrap()
}

/// Writes documents (as token ids) into a train shard pair and returns the directory.
fn corpus(docs: &[Vec<u32>], per_shard: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut shards = Vec::new();
    for (i, chunk) in docs.chunks(per_shard).enumerate() {
        let mut w = ShardWriter::create(dir.path(), &format!("train-{i:05}"), "train").unwrap();
        for d in chunk {
            w.push(d).unwrap();
        }
        shards.push(w.finish().unwrap());
    }
    let m = ShardManifest {
        format: FORMAT.into(),
        vocab_size: 374,
        tokenizer_sha256: String::new(),
        tokenizer_build: None,
        shards,
        extra: serde_json::Value::Null,
    };
    std::fs::write(
        dir.path().join("manifest.json"),
        serde_json::to_string(&m).unwrap(),
    )
    .unwrap();
    dir
}

#[test]
fn grouped_sequences_concatenate_documents_and_keep_the_tail() {
    let tok = tokenizer();
    let docs: Vec<Vec<u32>> = vec![vec![10, 11, 12], vec![], vec![20, 21, 22, 23, 24], vec![30]];
    let dir = corpus(&docs, 2);
    let seqs = Sequences::new(Corpus::open(dir.path(), "train").unwrap(), 4, false, &tok).unwrap();
    let all: Vec<Vec<u32>> = (0..seqs.len()).map(|i| seqs.get(i)).collect();
    // <s> d0 </s> <s> </s> <s> d2 </s> <s> d3 </s>: 5 + 2 + 7 + 3 = 17 tokens → blocks of 4, tail of 1.
    let stream: Vec<u32> = all.concat();
    let mut expected = Vec::new();
    for d in &docs {
        expected.push(0);
        expected.extend(d);
        expected.push(2);
    }
    assert_eq!(stream, expected);
    assert_eq!(all.len(), 5);
    assert!(all[..4].iter().all(|s| s.len() == 4) && all[4].len() == 1);
    assert!(all
        .iter()
        .enumerate()
        .all(|(i, s)| seqs.seq_len(i) == s.len()));
}

#[test]
fn line_by_line_truncates_each_document_and_skips_empty_ones() {
    let tok = tokenizer();
    let docs: Vec<Vec<u32>> = vec![vec![10, 11, 12, 13, 14, 15], vec![], vec![20]];
    let dir = corpus(&docs, 10);
    let seqs = Sequences::new(Corpus::open(dir.path(), "train").unwrap(), 5, true, &tok).unwrap();
    assert_eq!(seqs.len(), 2);
    assert_eq!(seqs.get(0), vec![0, 10, 11, 12, 2]);
    assert_eq!(seqs.get(1), vec![0, 20, 2]);
    assert_eq!((seqs.seq_len(0), seqs.seq_len(1)), (5, 3));
}

fn sample_batch(tok: &XlmrTokenizer) -> (Tensor, Tensor) {
    let texts = [
        "Pacientul a fost internat cu accident vascular cerebral ischemic acut și hipertensiune arterială.",
        "Ο ασθενής εισήχθη με οξύ ισχαιμικό αγγειακό εγκεφαλικό επεισόδιο.",
        "Short one.",
    ];
    let seqs: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| tok.encode(t).unwrap().input_ids)
        .collect();
    pad_batch(&seqs, tok.pad_id, 8)
}

#[test]
fn masking_rates_and_exclusions_follow_the_collator() {
    let tok = tokenizer();
    let masker = Masker::new(&tok, MaskingConfig::default()).unwrap();
    let (ids, attn) = sample_batch(&tok);
    let special = ids
        .eq(0)
        .logical_or(&ids.eq(2))
        .logical_or(&ids.eq(1))
        .logical_or(&ids.eq(3));
    let (mut chosen, mut as_mask, mut as_random, mut kept, mut total) =
        (0i64, 0i64, 0i64, 0i64, 0i64);
    tch::manual_seed(0);
    for _ in 0..400 {
        let (inputs, labels) = masker.mask(&ids, &attn).unwrap();
        let is_chosen = labels.ne(IGNORE);
        assert_eq!(
            is_chosen
                .logical_and(&special)
                .sum(Kind::Int64)
                .int64_value(&[]),
            0,
            "special or pad masked"
        );
        assert_eq!(
            labels.masked_select(&is_chosen),
            ids.masked_select(&is_chosen),
            "labels are the originals"
        );
        let changed = inputs.ne_tensor(&ids);
        assert_eq!(
            changed
                .logical_and(&is_chosen.logical_not())
                .sum(Kind::Int64)
                .int64_value(&[]),
            0
        );
        let masked = inputs.eq(tok.mask_id as i64).logical_and(&is_chosen);
        let random = changed.logical_and(&masked.logical_not());
        let rand_ids = inputs.masked_select(&random);
        assert_eq!(
            rand_ids
                .lt(4)
                .logical_or(&rand_ids.eq(tok.mask_id as i64))
                .sum(Kind::Int64)
                .int64_value(&[]),
            0
        );
        chosen += is_chosen.sum(Kind::Int64).int64_value(&[]);
        as_mask += masked.sum(Kind::Int64).int64_value(&[]);
        as_random += random.sum(Kind::Int64).int64_value(&[]);
        kept += is_chosen
            .logical_and(&changed.logical_not())
            .sum(Kind::Int64)
            .int64_value(&[]);
        total += attn
            .ne(0)
            .logical_and(&special.logical_not())
            .sum(Kind::Int64)
            .int64_value(&[]);
    }
    let rate = chosen as f64 / total as f64;
    let (m, r, k) = (
        as_mask as f64 / chosen as f64,
        as_random as f64 / chosen as f64,
        kept as f64 / chosen as f64,
    );
    println!(
        "chosen {rate:.4}; <mask> {m:.3}, random {r:.3}, kept {k:.3} (random may equal original)"
    );
    assert!((rate - 0.15).abs() < 0.01, "{rate}");
    assert!((m - 0.8).abs() < 0.03 && (r - 0.1).abs() < 0.02 && (k - 0.1).abs() < 0.02);
}

#[test]
fn whole_word_masking_masks_whole_words() {
    let tok = tokenizer();
    let cfg = MaskingConfig {
        whole_word_mask: true,
        ..Default::default()
    };
    let masker = Masker::new(&tok, cfg).unwrap();
    let (ids, attn) = sample_batch(&tok);
    let starts: Vec<Vec<bool>> = (0..ids.size()[0])
        .map(|b| {
            (0..ids.size()[1])
                .map(|s| {
                    let id = ids.int64_value(&[b, s]) as u32;
                    id <= 3 || tok.id_to_token(id).unwrap().starts_with('\u{2581}')
                })
                .collect()
        })
        .collect();
    tch::manual_seed(1);
    let mut partial_words = 0;
    let mut chosen = 0;
    for _ in 0..50 {
        let (_, labels) = masker.mask(&ids, &attn).unwrap();
        for (b, row) in starts.iter().enumerate() {
            let lab: Vec<bool> = (0..row.len())
                .map(|s| labels.int64_value(&[b as i64, s as i64]) != IGNORE)
                .collect();
            for s in 1..row.len() {
                let id = ids.int64_value(&[b as i64, s as i64]);
                let prev = ids.int64_value(&[b as i64, s as i64 - 1]);
                // Inside a word (no ▁, previous token ordinary), both tokens share the decision.
                if !row[s] && prev > 3 && id > 3 && lab[s] != lab[s - 1] {
                    partial_words += 1;
                }
            }
            chosen += lab.iter().filter(|&&c| c).count();
        }
    }
    assert!(chosen > 0);
    assert_eq!(partial_words, 0, "a word was masked in part");
}

/// A tiny random MLM model (seeded with `seed`) and the sample batch masked, with its labelled positions.
struct MaskedSample {
    m: Pretrained<XlmRobertaForMaskedLM>,
    ids: Tensor,
    attn: Tensor,
    inputs: Tensor,
    labels: Tensor,
    positions: Tensor,
    targets: Tensor,
}

fn masked_sample(seed: i64) -> MaskedSample {
    let tok = tokenizer();
    let mut cfg = XlmRobertaConfig::new(tok.vocab_size() as i64, 32, 2, 4, 64);
    cfg.max_position_embeddings = 66;
    tch::manual_seed(seed);
    let m = Pretrained::<XlmRobertaForMaskedLM>::init(cfg, Device::Cpu).unwrap();
    let masker = Masker::new(&tok, MaskingConfig::default()).unwrap();
    let (ids, attn) = sample_batch(&tok);
    let (inputs, labels) = masker.mask(&ids, &attn).unwrap();
    let (positions, targets) = labelled_positions(&labels);
    MaskedSample {
        m,
        ids,
        attn,
        inputs,
        labels,
        positions,
        targets,
    }
}

#[test]
fn loss_on_masked_positions_equals_loss_over_all_positions() {
    let MaskedSample {
        m,
        attn,
        inputs,
        labels,
        positions,
        targets,
        ..
    } = masked_sample(4);
    let at = m
        .model
        .forward_at(&inputs, &attn, None, &positions, false)
        .cross_entropy_for_logits(&targets);
    let all = m.model.forward_t(&inputs, &attn, None, false);
    let vocab = all.size()[2];
    let full = all
        .view([-1, vocab])
        .log_softmax(-1, Kind::Float)
        .nll_loss_nd::<Tensor>(&labels.view([-1]), None, tch::Reduction::Mean, IGNORE);
    let d = (at.double_value(&[]) - full.double_value(&[])).abs();
    assert!(
        d < 1e-6,
        "masked-only loss differs from all-position loss by {d}"
    );
    // And the gradients agree too (what training actually uses).
    let grads = |loss: Tensor| {
        for (_, v) in m.vs.variables() {
            let mut g = v.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        loss.backward();
        m.vs.variables()["lm_head.dense.weight"].grad().copy()
    };
    let g_at = grads(
        m.model
            .forward_at(&inputs, &attn, None, &positions, false)
            .cross_entropy_for_logits(&targets),
    );
    let logits = m.model.forward_t(&inputs, &attn, None, false);
    let g_all = grads(
        logits
            .view([-1, vocab])
            .log_softmax(-1, Kind::Float)
            .nll_loss_nd::<Tensor>(&labels.view([-1]), None, tch::Reduction::Mean, IGNORE),
    );
    assert!(common::max_abs_diff(&g_at, &g_all) < 1e-6);
}

/// Padding the labelled positions to a fixed bound (what lets one captured CUDA graph replay every batch
/// of a size) changes neither the training loss nor any gradient.
#[test]
fn positions_padded_to_the_bound_give_the_same_loss_and_gradients() {
    let sample = masked_sample(5);
    let MaskedSample {
        m,
        ids,
        attn,
        inputs,
        ..
    } = &sample;
    let (positions, targets) = (&sample.positions, &sample.targets);
    let bound = position_bound(ids.numel() as i64, 0.15);
    assert!(
        bound > positions.size()[0],
        "bound {bound} for {positions:?}"
    );
    let (padded_positions, padded_targets) = pad_positions(positions, targets, bound).unwrap();
    assert_eq!(padded_positions.size(), [bound]);
    let run = |positions: &Tensor, targets: &Tensor| {
        for (_, v) in m.vs.variables() {
            let mut g = v.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        let loss = model::loss::cross_entropy(
            &m.model.loss_logits_at(inputs, attn, None, positions, false),
            targets,
        );
        loss.backward();
        let mut grads: Vec<(String, Tensor)> =
            m.vs.variables()
                .into_iter()
                .map(|(k, v)| (k, v.grad().copy()))
                .collect();
        grads.sort_by(|a, b| a.0.cmp(&b.0));
        (loss.double_value(&[]), grads)
    };
    let (loss, grads) = run(positions, targets);
    let (padded_loss, padded_grads) = run(&padded_positions, &padded_targets);
    assert!(
        (loss - padded_loss).abs() <= 1e-6 * loss.abs(),
        "loss {loss} vs padded {padded_loss}"
    );
    for ((name, g), (_, pg)) in grads.iter().zip(&padded_grads) {
        let d = common::max_abs_diff(g, pg);
        assert!(d <= 1e-6, "{name}: gradients differ by {d:e}");
    }
    // More labelled positions than the bound: refused, the caller steps eagerly.
    assert!(pad_positions(positions, targets, positions.size()[0] - 1).is_none());
}

#[test]
fn position_bound_covers_the_binomial_count() {
    // 32 × 512 tokens at 15%: mean 2,457.6, sd 45.7 → 2,731.8, rounded up to 64s.
    assert_eq!(position_bound(32 * 512, 0.15), 2752);
    assert_eq!(position_bound(1, 0.15), 1);
    assert!(position_bound(100, 0.5) <= 100);
}
