//! Near-duplicate detection: MinHash signatures of word shingles, banded into an LSH index, with the
//! candidate's estimated Jaccard similarity checked against the threshold.
//!
//! Documents are decided in corpus order (the first of a near-duplicate pair is kept), so the result is
//! deterministic; signatures can be computed in parallel beforehand.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NearDupConfig {
    /// Estimated Jaccard similarity of word shingles at or above which a document is a near duplicate.
    pub threshold: f64,
    /// Words per shingle.
    pub shingle_words: usize,
    /// MinHash functions per signature.
    pub permutations: usize,
}

impl Default for NearDupConfig {
    fn default() -> Self {
        Self {
            threshold: 0.8,
            shingle_words: 5,
            permutations: 128,
        }
    }
}

impl NearDupConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            anyhow::bail!(
                "near_duplicates.threshold must be in (0, 1], got {}",
                self.threshold
            );
        }
        if self.shingle_words == 0 || self.permutations < 2 {
            anyhow::bail!("near_duplicates needs shingle_words ≥ 1 and permutations ≥ 2");
        }
        Ok(())
    }

    /// Bands × rows = permutations, with the LSH curve's midpoint (1/b)^(1/r) nearest the threshold.
    pub fn bands(&self) -> (usize, usize) {
        (1..=self.permutations)
            .filter(|b| self.permutations.is_multiple_of(*b))
            .map(|b| (b, self.permutations / b))
            .min_by(|x, y| {
                let d = |(b, r): (usize, usize)| {
                    ((1.0 / b as f64).powf(1.0 / r as f64) - self.threshold).abs()
                };
                d(*x).total_cmp(&d(*y))
            })
            .unwrap_or((1, self.permutations))
    }
}

/// FNV-1a, then mixed: stable across Rust versions, so signatures (and the corpus) are too.
fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64: a cheap, well-mixed permutation of 64-bit values.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The MinHash signature of a text's lower-cased word shingles (`None` for a text without words).
pub fn signature(text: &str, cfg: &NearDupConfig) -> Option<Vec<u32>> {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() {
        return None;
    }
    let n = cfg.shingle_words.min(words.len());
    let shingles: Vec<u64> = words.windows(n).map(|w| hash_str(&w.join(" "))).collect();
    Some(
        (0..cfg.permutations as u64)
            .map(|i| {
                let salt = mix(i.wrapping_add(0x9E37_79B9_7F4A_7C15));
                shingles
                    .iter()
                    .map(|&s| mix(s ^ salt))
                    .min()
                    .unwrap_or(u64::MAX) as u32
            })
            .collect(),
    )
}

/// The LSH index of the documents kept so far.
pub struct NearDupIndex {
    cfg: NearDupConfig,
    rows: usize,
    buckets: Vec<HashMap<u64, Vec<u32>>>,
    signatures: Vec<Vec<u32>>,
}

impl NearDupIndex {
    pub fn new(cfg: NearDupConfig) -> Self {
        let (bands, rows) = cfg.bands();
        Self {
            cfg,
            rows,
            buckets: (0..bands).map(|_| HashMap::new()).collect(),
            signatures: Vec::new(),
        }
    }

    fn band_key(&self, sig: &[u32], band: usize) -> u64 {
        sig[band * self.rows..(band + 1) * self.rows]
            .iter()
            .fold(band as u64, |h, &v| mix(h ^ u64::from(v)))
    }

    /// True when `sig` is a near duplicate of a kept document; otherwise it is kept (indexed).
    pub fn is_near_duplicate(&mut self, sig: &[u32]) -> bool {
        let keys: Vec<u64> = (0..self.buckets.len())
            .map(|b| self.band_key(sig, b))
            .collect();
        for (band, key) in keys.iter().enumerate() {
            for &other in self.buckets[band].get(key).into_iter().flatten() {
                let theirs = &self.signatures[other as usize];
                let same = sig.iter().zip(theirs).filter(|(a, b)| a == b).count();
                if same as f64 / sig.len() as f64 >= self.cfg.threshold {
                    return true;
                }
            }
        }
        let id = self.signatures.len() as u32;
        self.signatures.push(sig.to_vec());
        for (band, key) in keys.into_iter().enumerate() {
            self.buckets[band].entry(key).or_default().push(id);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_copies_are_caught_and_different_texts_are_not() {
        let cfg = NearDupConfig::default();
        let (b, r) = cfg.bands();
        assert_eq!(b * r, 128);
        let base = "the patient was admitted with acute ischaemic stroke and received intravenous \
                    thrombolysis within ninety minutes of symptom onset blood pressure was controlled \
                    and the nihss score improved from fourteen to six at discharge on day seven";
        let edited = base.replace("seven", "eight");
        let other = "pacientul a fost internat cu accident vascular cerebral hemoragic tratat \
                     conservator cu monitorizarea tensiunii arteriale si a glicemiei timp de zece zile";
        let mut index = NearDupIndex::new(cfg);
        assert!(!index.is_near_duplicate(&signature(base, &cfg).unwrap()));
        assert!(index.is_near_duplicate(&signature(&edited, &cfg).unwrap()));
        assert!(index.is_near_duplicate(&signature(&base.to_uppercase(), &cfg).unwrap()));
        assert!(!index.is_near_duplicate(&signature(other, &cfg).unwrap()));
        assert_eq!(signature("   ", &cfg), None);
    }
}
