//! XLM-RoBERTa: embeddings, encoder and the MLM and QA heads, with `transformers`' parameter names.
//!
//! Variables are created under the exact `transformers` key names (`roberta.encoder.layer.0.…`), so
//! a checkpoint maps onto the `VarStore` name for name (see `weights.rs`). Every `forward_t` takes
//! `train`, which switches dropout on; nothing else differs between train and eval mode.

use std::sync::Arc;

use tch::nn::{self, Init, Module};
use tch::{Device, Kind, Tensor};

use crate::config::XlmRobertaConfig;
use crate::dropout::dropout;

/// `transformers`' `_init_weights`: N(0, initializer_range) weights, zero biases.
fn linear(p: nn::Path, in_dim: i64, out_dim: i64, cfg: &XlmRobertaConfig) -> nn::Linear {
    nn::linear(
        p,
        in_dim,
        out_dim,
        nn::LinearConfig {
            ws_init: Init::Randn {
                mean: 0.,
                stdev: cfg.initializer_range,
            },
            bs_init: Some(Init::Const(0.)),
            bias: true,
        },
    )
}

fn layer_norm(p: nn::Path, cfg: &XlmRobertaConfig) -> nn::LayerNorm {
    let config = nn::LayerNormConfig {
        eps: cfg.layer_norm_eps,
        ..Default::default()
    };
    nn::layer_norm(p, vec![cfg.hidden_size], config)
}

/// An embedding table initialised as `transformers` does, the padding row zeroed when it has one.
fn embedding(
    p: nn::Path,
    rows: i64,
    cfg: &XlmRobertaConfig,
    padding_idx: Option<i64>,
) -> nn::Embedding {
    let config = nn::EmbeddingConfig {
        ws_init: Init::Randn {
            mean: 0.,
            stdev: cfg.initializer_range,
        },
        padding_idx: padding_idx.unwrap_or(-1),
        ..Default::default()
    };
    let emb = nn::embedding(p, rows, cfg.hidden_size, config);
    if let Some(pad) = padding_idx {
        tch::no_grad(|| {
            let _ = emb.ws.get(pad).zero_();
        });
    }
    emb
}

/// `config.json`'s `hidden_act` on a tensor.
fn activate(act: crate::config::HiddenAct, x: &Tensor) -> Tensor {
    use crate::config::HiddenAct;
    match act {
        HiddenAct::Gelu => x.gelu("none"),
        HiddenAct::GeluNew | HiddenAct::GeluPytorchTanh => x.gelu("tanh"),
        HiddenAct::Relu => x.relu(),
        HiddenAct::Silu | HiddenAct::Swish => x.silu(),
    }
}

/// RoBERTa's position ids: padding keeps `pad`, real tokens count from `pad + 1` (fairseq's scheme).
pub fn position_ids(input_ids: &Tensor, pad_token_id: i64) -> Tensor {
    let mask = input_ids.ne(pad_token_id).to_kind(Kind::Int64);
    mask.cumsum(1, Kind::Int64) * &mask + pad_token_id
}

#[derive(Debug)]
pub struct Embeddings {
    pub word_embeddings: nn::Embedding,
    position_embeddings: nn::Embedding,
    token_type_embeddings: nn::Embedding,
    layer_norm: nn::LayerNorm,
    dropout: f64,
    pad_token_id: i64,
}

impl Embeddings {
    pub fn new(p: nn::Path, cfg: &XlmRobertaConfig) -> Self {
        let pad = cfg.pad_token_id;
        Self {
            word_embeddings: embedding(&p / "word_embeddings", cfg.vocab_size, cfg, Some(pad)),
            position_embeddings: embedding(
                &p / "position_embeddings",
                cfg.max_position_embeddings,
                cfg,
                Some(pad),
            ),
            token_type_embeddings: embedding(
                &p / "token_type_embeddings",
                cfg.type_vocab_size,
                cfg,
                None,
            ),
            layer_norm: layer_norm(&p / "LayerNorm", cfg),
            dropout: cfg.hidden_dropout_prob,
            pad_token_id: pad,
        }
    }

    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        let positions = position_ids(input_ids, self.pad_token_id);
        let mut x =
            self.word_embeddings.forward(input_ids) + self.position_embeddings.forward(&positions);
        x = match token_type_ids {
            Some(tt) => x + self.token_type_embeddings.forward(tt),
            // Row 0 for every token, as `transformers` does when no token types are given.
            None => x + self.token_type_embeddings.ws.get(0),
        };
        dropout(&self.layer_norm.forward(&x), self.dropout, train)
    }
}

#[derive(Debug)]
struct SelfAttention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    output: nn::Linear,
    layer_norm: nn::LayerNorm,
    heads: i64,
    head_dim: i64,
    attention_dropout: f64,
    hidden_dropout: f64,
}

impl SelfAttention {
    fn new(p: nn::Path, cfg: &XlmRobertaConfig) -> Self {
        let h = cfg.hidden_size;
        let s = &p / "self";
        let o = &p / "output";
        Self {
            query: linear(&s / "query", h, h, cfg),
            key: linear(&s / "key", h, h, cfg),
            value: linear(&s / "value", h, h, cfg),
            output: linear(&o / "dense", h, h, cfg),
            layer_norm: layer_norm(&o / "LayerNorm", cfg),
            heads: cfg.num_attention_heads,
            head_dim: cfg.head_dim(),
            attention_dropout: cfg.attention_probs_dropout_prob,
            hidden_dropout: cfg.hidden_dropout_prob,
        }
    }

    /// `mask`: boolean `[batch, 1, 1, seq]`, true where a key may be attended to; `None` when every
    /// key may be, which lets CUDA choose its flash-attention kernel (it takes no mask).
    fn forward_t(&self, x: &Tensor, mask: Option<&Tensor>, train: bool) -> Tensor {
        let (batch, seq, hidden) = x.size3().expect("hidden states are [batch, seq, hidden]");
        let split = |t: Tensor| {
            t.view([batch, seq, self.heads, self.head_dim])
                .transpose(1, 2)
        };
        // One product for query, key and value: under autocast the input is cast to bf16 once instead
        // of three times, and the backward pass sums one gradient for it instead of three.
        let weight = Tensor::cat(&[&self.query.ws, &self.key.ws, &self.value.ws], 0);
        let bias =
            [&self.query.bs, &self.key.bs, &self.value.bs].map(|b| b.as_ref().expect("biased"));
        let qkv = x.linear(&weight, Some(Tensor::cat(&bias, 0)));
        // `split`, not three `narrow`s: its backward is one concatenation, theirs three zero-filled
        // [batch, seq, 3 × hidden] tensors and two sums.
        let mut parts = qkv.split(hidden, 2).into_iter().map(split);
        let (q, k, v) = match (parts.next(), parts.next(), parts.next()) {
            (Some(q), Some(k), Some(v)) => (q, k, v),
            _ => unreachable!("[batch, seq, 3 × hidden] splits into three"),
        };
        let context = if train && self.attention_dropout > 0.0 && x.device() == Device::Cpu {
            attention_with_dropout(&q, &k, &v, mask, self.attention_dropout)
        } else {
            let p = if train { self.attention_dropout } else { 0.0 };
            Tensor::scaled_dot_product_attention(&q, &k, &v, mask, p, false, None, false)
        };
        let context = context
            .transpose(1, 2)
            .contiguous()
            .view([batch, seq, hidden]);
        let out = dropout(&self.output.forward(&context), self.hidden_dropout, train);
        self.layer_norm.forward(&(out + x))
    }
}

/// Attention as SDPA's CPU path computes it with dropout, but with the probabilities' mask drawn on every
/// core (`crate::dropout`); SDPA draws it on one thread.
fn attention_with_dropout(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    p: f64,
) -> Tensor {
    let head_dim = q.size().last().copied().unwrap_or(1) as f64;
    // Scaling q rather than the scores, and masking in place, saves two passes over [B, H, S, S].
    let mut scores = (q * head_dim.powf(-0.5)).matmul(&k.transpose(-2, -1));
    if let Some(m) = mask {
        let _ = scores.masked_fill_(&m.logical_not(), f64::NEG_INFINITY);
    }
    let probs = scores.softmax(-1, scores.kind());
    dropout(&probs, p, true).matmul(v)
}

#[derive(Debug)]
struct Layer {
    attention: SelfAttention,
    intermediate: nn::Linear,
    output: nn::Linear,
    layer_norm: nn::LayerNorm,
    act: crate::config::HiddenAct,
    dropout: f64,
}

impl Layer {
    fn new(p: nn::Path, cfg: &XlmRobertaConfig) -> Self {
        Self {
            attention: SelfAttention::new(&p / "attention", cfg),
            intermediate: linear(
                &p / "intermediate" / "dense",
                cfg.hidden_size,
                cfg.intermediate_size,
                cfg,
            ),
            output: linear(
                &p / "output" / "dense",
                cfg.intermediate_size,
                cfg.hidden_size,
                cfg,
            ),
            layer_norm: layer_norm(&p / "output" / "LayerNorm", cfg),
            act: cfg.hidden_act,
            dropout: cfg.hidden_dropout_prob,
        }
    }

    fn forward_t(&self, x: &Tensor, mask: Option<&Tensor>, train: bool) -> Tensor {
        let x = self.attention.forward_t(x, mask, train);
        // Not `_addmm_activation` (bias and GELU in cuBLASLt's epilogue): on CUDA its GELU is the tanh
        // approximation (pytorch#104061), not the exact GELU XLM-R was trained with, and libtorch has
        // no gradient for it. The bias is in the product's epilogue already.
        let h = activate(self.act, &self.intermediate.forward(&x));
        let h = dropout(&self.output.forward(&h), self.dropout, train);
        self.layer_norm.forward(&(h + x))
    }
}

#[derive(Debug)]
struct Pooler {
    dense: nn::Linear,
}

/// The encoder without a head: `XLMRobertaModel`.
#[derive(Debug)]
pub struct XlmRobertaModel {
    pub embeddings: Embeddings,
    /// Shared with the closures a checkpointed forward leaves in the graph.
    layers: Vec<Arc<Layer>>,
    /// Training forwards keep no layer's activations: the backward recomputes them.
    gradient_checkpointing: bool,
    pooler: Option<Pooler>,
    max_sequence_length: i64,
}

impl XlmRobertaModel {
    /// `p` is the model's root (`roberta` inside a head model, the store's root for a bare model).
    // Layers in an Arc, not an Rc: a checkpointed forward's closure holds one, and libtorch may drop it
    // on its backward thread (csrc/checkpoint.cpp) while this thread clones it for the next step.
    #[allow(clippy::arc_with_non_send_sync)]
    pub fn new(p: nn::Path, cfg: &XlmRobertaConfig, with_pooler: bool) -> Self {
        let layers_path = &p / "encoder" / "layer";
        Self {
            embeddings: Embeddings::new(&p / "embeddings", cfg),
            layers: (0..cfg.num_hidden_layers)
                .map(|i| Arc::new(Layer::new(&layers_path / i, cfg)))
                .collect(),
            gradient_checkpointing: false,
            pooler: with_pooler.then(|| Pooler {
                dense: linear(
                    &p / "pooler" / "dense",
                    cfg.hidden_size,
                    cfg.hidden_size,
                    cfg,
                ),
            }),
            max_sequence_length: cfg.max_sequence_length(),
        }
    }

    /// Last hidden states `[batch, seq, hidden]`.
    ///
    /// `attention_mask` is `[batch, seq]` with 1 for real tokens (any integer or bool kind), on the
    /// model's device or on the host.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        let seq = input_ids.size().last().copied().unwrap_or(0);
        assert!(
            seq <= self.max_sequence_length,
            "sequence of {seq} tokens is longer than the model's {} positions",
            self.max_sequence_length
        );
        let keep = attention_mask.ne(0);
        // Grouped MLM sequences have no padding; like transformers, drop the mask then. Deciding reads a
        // value: from a device mask the host waits for the device, so callers that build batches on the
        // host may pass the host mask, which goes to the device only when it has padding.
        let padded = keep.all().int64_value(&[]) == 0;
        let mask = padded.then(|| {
            let keep = if keep.device() == input_ids.device() {
                keep
            } else {
                crate::device::upload(&keep, input_ids.device())
            };
            keep.unsqueeze(1).unsqueeze(1)
        });
        let mut x = self.embeddings.forward_t(input_ids, token_type_ids, train);
        for layer in &self.layers {
            x = if self.gradient_checkpointing && train {
                let (layer, mask) = (layer.clone(), mask.as_ref().map(Tensor::shallow_clone));
                crate::checkpoint::checkpoint(&x, move |x| layer.forward_t(x, mask.as_ref(), true))
                    .unwrap_or_else(|e| panic!("{e:#}"))
            } else {
                layer.forward_t(&x, mask.as_ref(), train)
            };
        }
        x
    }

    /// Gradient checkpointing (`transformers`' `gradient_checkpointing_enable`): training forwards keep
    /// only each layer's input, and the backward runs each layer again, with the same dropout masks.
    /// Fewer activations in memory (a longer batch fits) for about one more forward per step.
    pub fn set_gradient_checkpointing(&mut self, on: bool) {
        self.gradient_checkpointing = on;
    }

    /// `tanh(dense(h[:, 0]))`, for checkpoints that carry a pooler.
    pub fn pool(&self, hidden: &Tensor) -> Option<Tensor> {
        self.pooler
            .as_ref()
            .map(|p| p.dense.forward(&hidden.select(1, 0)).tanh())
    }

    pub fn max_sequence_length(&self) -> i64 {
        self.max_sequence_length
    }
}

/// dense → GELU → LayerNorm → decoder (the word embeddings, transposed) + bias.
#[derive(Debug)]
pub struct LmHead {
    dense: nn::Linear,
    layer_norm: nn::LayerNorm,
    decoder: Tensor,
    bias: Tensor,
}

impl LmHead {
    fn new(p: nn::Path, cfg: &XlmRobertaConfig, word_embeddings: &Tensor) -> Self {
        Self {
            dense: linear(&p / "dense", cfg.hidden_size, cfg.hidden_size, cfg),
            layer_norm: layer_norm(&p / "layer_norm", cfg),
            decoder: word_embeddings.shallow_clone(),
            bias: p.var("bias", &[cfg.vocab_size], Init::Const(0.)),
        }
    }

    /// Logits for hidden states of any leading shape `[..., hidden]`.
    pub fn forward(&self, hidden: &Tensor) -> Tensor {
        self.transform(hidden)
            .linear(&self.decoder, Some(&self.bias))
    }

    /// The head's hidden states before the decoder.
    fn transform(&self, hidden: &Tensor) -> Tensor {
        // The head uses exact GELU whatever the encoder's activation, as `transformers` does.
        let x = self.dense.forward(hidden).gelu("none");
        self.layer_norm.forward(&x)
    }

    /// [`LmHead::forward`] for a loss or an argmax: on CUDA in bf16/fp16 (under autocast, or with the
    /// weights held in half precision) the vocabulary columns are padded to a multiple of
    /// [`VOCAB_ALIGNMENT`] whose logits are -inf, which add nothing to a softmax or cross-entropy and
    /// never win an argmax. With 250,002 columns a logits row is not
    /// 16-byte aligned, and cuBLAS falls back to Ampere kernels for the three decoder products, which
    /// took 8.5 of 60 ms of an H200's MLM step at the xlm-roberta-base shape (32×512, bf16).
    pub fn forward_padded(&self, hidden: &Tensor) -> Tensor {
        let x = self.transform(hidden);
        let device = x.device();
        let vocab = self.decoder.size()[0];
        let padded = (vocab + VOCAB_ALIGNMENT - 1) / VOCAB_ALIGNMENT * VOCAB_ALIGNMENT;
        // Half-precision products: under autocast, or on weights held in bf16/fp16 themselves.
        let half = match (crate::autocast::state(device), x.kind()) {
            ((true, Some(kind @ (Kind::BFloat16 | Kind::Half))), _) => Some(kind),
            (_, kind @ (Kind::BFloat16 | Kind::Half)) => Some(kind),
            _ => None,
        };
        match half {
            Some(kind) if device.is_cuda() && padded != vocab => {
                padded_linear(&x, &self.decoder, &self.bias, kind, padded)
            }
            _ => x.linear(&self.decoder, Some(&self.bias)),
        }
    }
}

/// `x · weightᵀ + bias` in `kind` with `rows` output columns, those past `weight`'s rows giving -inf.
fn padded_linear(x: &Tensor, weight: &Tensor, bias: &Tensor, kind: Kind, rows: i64) -> Tensor {
    let (vocab, width) = weight.size2().expect("the weight is [rows, width]");
    let device = x.device();
    // One cast-and-copy each, as autocast's own cast of the decoder would be; autograd takes the
    // gradient back through the copies to the tied word embeddings and the bias.
    let padded = Tensor::empty([rows, width], (kind, device));
    let _ = padded.narrow(0, vocab, rows - vocab).zero_();
    padded.narrow(0, 0, vocab).copy_(weight);
    let padded_bias = Tensor::full([rows], f64::NEG_INFINITY, (kind, device));
    padded_bias.narrow(0, 0, vocab).copy_(bias);
    x.to_kind(kind).linear(&padded, Some(&padded_bias))
}

/// The multiple [`LmHead::forward_padded`] pads the vocabulary to.
pub const VOCAB_ALIGNMENT: i64 = 64;

/// `XLMRobertaForMaskedLM`.
#[derive(Debug)]
pub struct XlmRobertaForMaskedLM {
    pub roberta: XlmRobertaModel,
    pub lm_head: LmHead,
}

impl XlmRobertaForMaskedLM {
    pub fn new(p: &nn::Path, cfg: &XlmRobertaConfig) -> Self {
        let roberta = XlmRobertaModel::new(p / "roberta", cfg, false);
        let lm_head = LmHead::new(p / "lm_head", cfg, &roberta.embeddings.word_embeddings.ws);
        Self { roberta, lm_head }
    }

    /// Logits at every position: `[batch, seq, vocab]`.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        let hidden = self
            .roberta
            .forward_t(input_ids, attention_mask, token_type_ids, train);
        self.lm_head.forward(&hidden)
    }

    /// Logits only at `positions` (flat indices into `batch * seq`): `[positions, vocab]`.
    ///
    /// With a 250k vocabulary the decoder dominates the cost; running it on the ~15% masked
    /// tokens only is what makes MLM training cheap.
    pub fn forward_at(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        positions: &Tensor,
        train: bool,
    ) -> Tensor {
        let selected = self.hidden_at(input_ids, attention_mask, token_type_ids, positions, train);
        self.lm_head.forward(&selected)
    }

    /// [`Self::forward_at`] for the loss and accuracy: columns past the vocabulary may follow, with -inf
    /// logits ([`LmHead::forward_padded`]).
    pub fn loss_logits_at(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        positions: &Tensor,
        train: bool,
    ) -> Tensor {
        let selected = self.hidden_at(input_ids, attention_mask, token_type_ids, positions, train);
        self.lm_head.forward_padded(&selected)
    }

    /// The encoder's last hidden states at `positions` (flat indices into `batch * seq`).
    fn hidden_at(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        positions: &Tensor,
        train: bool,
    ) -> Tensor {
        let hidden = self
            .roberta
            .forward_t(input_ids, attention_mask, token_type_ids, train);
        let hidden_size = hidden.size().last().copied().unwrap_or(0);
        hidden.reshape([-1, hidden_size]).index_select(0, positions)
    }
}

/// `XLMRobertaForQuestionAnswering`: start and end logits per token.
#[derive(Debug)]
pub struct XlmRobertaForQuestionAnswering {
    pub roberta: XlmRobertaModel,
    qa_outputs: nn::Linear,
}

impl XlmRobertaForQuestionAnswering {
    pub fn new(p: &nn::Path, cfg: &XlmRobertaConfig) -> Self {
        Self {
            roberta: XlmRobertaModel::new(p / "roberta", cfg, false),
            qa_outputs: linear(p / "qa_outputs", cfg.hidden_size, 2, cfg),
        }
    }

    /// `(start_logits, end_logits)`, each `[batch, seq]`.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        train: bool,
    ) -> (Tensor, Tensor) {
        let hidden = self
            .roberta
            .forward_t(input_ids, attention_mask, token_type_ids, train);
        let logits = self.qa_outputs.forward(&hidden);
        (
            logits.select(-1, 0).contiguous(),
            logits.select(-1, 1).contiguous(),
        )
    }
}

/// Which `transformers` class a checkpoint directory is saved as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Base,
    MaskedLM,
    QuestionAnswering,
}

impl Architecture {
    pub fn class_name(self) -> &'static str {
        match self {
            Self::Base => "XLMRobertaModel",
            Self::MaskedLM => "XLMRobertaForMaskedLM",
            Self::QuestionAnswering => "XLMRobertaForQuestionAnswering",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_decoder_gives_the_same_loss_and_gradients() {
        let _global = crate::global_state_lock();
        tch::manual_seed(3);
        let opts = (Kind::Float, Device::Cpu);
        let x = Tensor::randn([6, 16], opts);
        let weight = Tensor::randn([13, 16], opts).set_requires_grad(true);
        let bias = Tensor::randn([13], opts).set_requires_grad(true);
        let targets = Tensor::from_slice(&[0i64, 12, 5, 7, 3, 12]);
        let kind = Kind::BFloat16;
        let grads = |logits: Tensor| {
            let loss = logits
                .to_kind(Kind::Float)
                .cross_entropy_for_logits(&targets);
            let g = Tensor::run_backward(&[&loss], &[&weight, &bias], false, false);
            (loss, g)
        };
        let plain = x
            .to_kind(kind)
            .linear(&weight.to_kind(kind), Some(bias.to_kind(kind)));
        let padded = padded_linear(&x, &weight, &bias, kind, 64);
        assert_eq!(padded.size(), [6, 64]);
        assert!(bool::try_from(padded.narrow(1, 13, 51).isinf().all()).unwrap());
        assert_eq!(
            padded.narrow(1, 0, 13).to_kind(Kind::Float),
            plain.to_kind(Kind::Float)
        );
        let (a, ga) = grads(plain);
        let (b, gb) = grads(padded);
        assert_eq!(a, b);
        for (ga, gb) in ga.iter().zip(&gb) {
            assert!(gb.isfinite().all().int64_value(&[]) == 1);
            let diff = (ga - gb).abs().max().double_value(&[]);
            assert!(diff < 1e-6, "gradient differs by {diff}");
        }
    }

    /// `bench_step --weights bf16`: the model with its weights held in bf16 computes in bf16 without
    /// autocast (logits, loss and every weight's gradient bf16), near what the fp32 weights give.
    #[test]
    fn bf16_weights_compute_in_bf16_near_fp32() {
        let _global = crate::global_state_lock();
        tch::manual_seed(5);
        let cfg = XlmRobertaConfig::new(120, 32, 2, 4, 64);
        let mut m = crate::Pretrained::<XlmRobertaForMaskedLM>::init(cfg, Device::Cpu).unwrap();
        let ids = Tensor::randint_low(4, 119, [2, 10], (Kind::Int64, Device::Cpu));
        let mask = ids.ones_like();
        let positions = Tensor::from_slice(&[1i64, 4, 13, 18]);
        let targets = Tensor::from_slice(&[7i64, 50, 3, 99]);
        let loss = |m: &crate::Pretrained<XlmRobertaForMaskedLM>| {
            let logits = m.model.loss_logits_at(&ids, &mask, None, &positions, false);
            (logits.kind(), crate::loss::cross_entropy(&logits, &targets))
        };
        let (kind32, loss32) = loss(&m);
        m.vs.bfloat16();
        let (kind16, loss16) = loss(&m);
        assert_eq!((kind32, kind16), (Kind::Float, Kind::BFloat16));
        let (a, b) = (loss32.double_value(&[]), loss16.double_value(&[]));
        assert!((a - b).abs() < 0.02 * a, "fp32 loss {a}, bf16 loss {b}");
        loss16.backward();
        for (name, v) in m.vs.variables() {
            let g = v.grad();
            assert_eq!(g.kind(), Kind::BFloat16, "{name}");
            assert!(bool::try_from(g.isfinite().all()).unwrap(), "{name}");
        }
    }

    #[test]
    fn cpu_attention_with_dropout_is_sdpa_arithmetic() {
        let _global = crate::global_state_lock();
        tch::manual_seed(0);
        let opts = (Kind::Float, Device::Cpu);
        let (q, k, v) = (
            Tensor::randn([2, 4, 24, 16], opts),
            Tensor::randn([2, 4, 24, 16], opts),
            Tensor::randn([2, 4, 24, 16], opts),
        );
        // The second sequence has 8 padding positions.
        let mask = Tensor::ones([2, 1, 1, 24], (Kind::Bool, Device::Cpu));
        let _ = mask.get(1).narrow(-1, 16, 8).fill_(0);
        let ours = attention_with_dropout(&q, &k, &v, Some(&mask), 0.0);
        let sdpa =
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(&mask), 0.0, false, None, false);
        let diff = (&ours - &sdpa).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "max |diff| {diff}");

        tch::manual_seed(5);
        let a = attention_with_dropout(&q, &k, &v, Some(&mask), 0.1);
        tch::manual_seed(5);
        let b = attention_with_dropout(&q, &k, &v, Some(&mask), 0.1);
        assert!(a.equal(&b), "same seed, different dropout");
        assert!(!a.equal(&ours), "dropout changed nothing");
    }
}
