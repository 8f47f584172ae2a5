//! `include_num_input_tokens_seen`: the input tokens the run has trained on, counted over every process
//! and every resume, in each record of the history (`num_input_tokens_seen`, as `transformers` logs it).

use serde::{Deserialize, Deserializer, Serialize};

/// What counts as an input token (`transformers`' `include_num_input_tokens_seen`; `true` is "all",
/// `false` "no").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokensSeen {
    /// Not counted.
    #[default]
    No,
    /// Every position of the batches' input ids, padding included.
    All,
    /// The real tokens (the attention mask's ones).
    NonPadding,
}

impl<'de> Deserialize<'de> for TokensSeen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Flag(bool),
            Name(String),
        }
        match Given::deserialize(d)? {
            Given::Flag(true) => Ok(Self::All),
            Given::Flag(false) => Ok(Self::No),
            Given::Name(name) => match name.as_str() {
                "no" => Ok(Self::No),
                "all" => Ok(Self::All),
                "non_padding" => Ok(Self::NonPadding),
                other => Err(serde::de::Error::custom(format!(
                    "include_num_input_tokens_seen: '{other}' is none of \"all\", \"non_padding\", \
                     \"no\" (or true / false)"
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TokensSeen;

    #[test]
    fn booleans_and_names_as_transformers_takes_them() {
        let parse = |v: serde_json::Value| serde_json::from_value::<TokensSeen>(v);
        assert_eq!(parse(true.into()).unwrap(), TokensSeen::All);
        assert_eq!(parse(false.into()).unwrap(), TokensSeen::No);
        assert_eq!(parse("non_padding".into()).unwrap(), TokensSeen::NonPadding);
        assert_eq!(parse("all".into()).unwrap(), TokensSeen::All);
        let err = parse("some".into()).unwrap_err().to_string();
        assert!(err.contains("'some' is none of"), "{err}");
        assert_eq!(
            serde_json::to_value(TokensSeen::NonPadding).unwrap(),
            "non_padding"
        );
    }
}
