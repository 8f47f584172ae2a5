//! Batches of token sequences as the model takes them.

use tch::Tensor;

/// Right-pads sequences to the longest (rounded up to a multiple of `multiple`): `(ids, attention_mask)`.
pub fn pad_batch(seqs: &[Vec<u32>], pad: u32, multiple: usize) -> (Tensor, Tensor) {
    let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
    let len = longest.div_ceil(multiple.max(1)) * multiple.max(1);
    let mut ids = Vec::with_capacity(seqs.len() * len);
    let mut mask = Vec::with_capacity(seqs.len() * len);
    for s in seqs {
        ids.extend(s.iter().map(|&t| t as i64));
        ids.extend(std::iter::repeat_n(pad as i64, len - s.len()));
        mask.extend(std::iter::repeat_n(1i64, s.len()));
        mask.extend(std::iter::repeat_n(0i64, len - s.len()));
    }
    let shape = [seqs.len() as i64, len as i64];
    (
        Tensor::from_slice(&ids).view(shape),
        Tensor::from_slice(&mask).view(shape),
    )
}
