//! `train.freeze`: parameters, named by glob patterns, that stay as they are.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use tch::Tensor;

/// The variables that train: all but those `freeze` names, which stop requiring gradients.
pub(super) fn trainable(
    mut variables: HashMap<String, Tensor>,
    freeze: &[String],
) -> Result<HashMap<String, Tensor>> {
    if freeze.is_empty() {
        return Ok(variables);
    }
    let patterns = freeze
        .iter()
        .map(|p| glob::Pattern::new(p).with_context(|| format!("train.freeze: bad pattern {p:?}")))
        .collect::<Result<Vec<_>>>()?;
    let mut frozen: Vec<String> = Vec::new();
    for (pattern, text) in patterns.iter().zip(freeze) {
        let hits: Vec<String> = variables
            .keys()
            .filter(|name| pattern.matches(name))
            .cloned()
            .collect();
        if hits.is_empty() {
            let mut names: Vec<&String> = variables.keys().collect();
            names.sort();
            bail!(
                "train.freeze: {text:?} matches no parameter (names look like {:?})",
                &names[..names.len().min(3)]
            );
        }
        frozen.extend(hits);
    }
    let (mut tensors, mut count) = (0, 0);
    for name in &frozen {
        if let Some(t) = variables.remove(name) {
            tensors += 1;
            count += t.numel();
            let _ = t.set_requires_grad(false);
        }
    }
    eprintln!("frozen: {tensors} tensors, {count} parameters");
    Ok(variables)
}
