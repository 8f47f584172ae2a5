//! The Label Studio ML backend protocol (`/health`, `/setup`, `/predict`): tasks in, span pre-annotations
//! out, with character offsets into the task's text as Label Studio's `Labels` over `Text` expect.
//!
//! The labelling configuration names the pieces: `<Labels name="label" toName="text">` with one
//! `<Label value="…"/>` per concept to pre-annotate, over `<Text name="text" value="$text"/>` whose
//! `$text` is the task data's key. Concepts the configuration has no label for are left out.

use anyhow::{bail, Result};
use quick_xml::events::Event;

/// What a labelling configuration tells the backend.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelConfig {
    /// The `Labels` control's name (`from_name`).
    pub from_name: String,
    /// The `Text` object it labels (`to_name`).
    pub to_name: String,
    /// The task data key of that text (`value="$text"` → `text`).
    pub data_key: String,
    /// The label values offered.
    pub labels: Vec<String>,
}

impl LabelConfig {
    pub fn parse(xml: &str) -> Result<Self> {
        let mut reader = quick_xml::Reader::from_str(xml);
        let (mut from_name, mut to_name) = (None, None);
        let mut texts: Vec<(String, String)> = Vec::new();
        let mut labels = Vec::new();
        let mut in_labels = false;
        loop {
            let event = reader
                .read_event()
                .map_err(|e| anyhow::anyhow!("label_config is not XML: {e}"))?;
            let (start, empty) = match &event {
                Event::Start(e) => (Some(e.clone()), false),
                Event::Empty(e) => (Some(e.clone()), true),
                Event::End(e) if e.name().as_ref() == b"Labels" => {
                    in_labels = false;
                    (None, false)
                }
                Event::Eof => break,
                _ => (None, false),
            };
            let Some(e) = start else { continue };
            let attr = |key: &str| {
                e.attributes()
                    .flatten()
                    .find(|a| a.key.as_ref() == key.as_bytes())
                    .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
            };
            match e.name().as_ref() {
                b"Labels" if from_name.is_none() => {
                    from_name = attr("name");
                    to_name = attr("toName");
                    in_labels = !empty;
                }
                b"Label" if in_labels => labels.extend(attr("value")),
                b"Text" | b"HyperText" => {
                    if let (Some(n), Some(v)) = (attr("name"), attr("value")) {
                        texts.push((n, v));
                    }
                }
                _ => {}
            }
        }
        let (Some(from_name), Some(to_name)) = (from_name, to_name) else {
            bail!("label_config has no <Labels name=… toName=…> control");
        };
        let Some((_, value)) = texts.iter().find(|(n, _)| *n == to_name) else {
            bail!("label_config has no <Text name=\"{to_name}\" value=\"$…\"> for the labels");
        };
        Ok(Self {
            from_name,
            to_name,
            data_key: value.trim_start_matches('$').to_owned(),
            labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_labels_over_text_config_is_understood() {
        let cfg = LabelConfig::parse(
            r#"<View>
  <Labels name="concept" toName="note">
    <Label value="glucose" background="red"/>
    <Label value="nihss_admission"/>
  </Labels>
  <Text name="note" value="$document"/>
</View>"#,
        )
        .unwrap();
        assert_eq!(
            cfg,
            LabelConfig {
                from_name: "concept".into(),
                to_name: "note".into(),
                data_key: "document".into(),
                labels: vec!["glucose".into(), "nihss_admission".into()],
            }
        );
        assert!(LabelConfig::parse("<View><Text name=\"t\" value=\"$t\"/></View>").is_err());
        assert!(LabelConfig::parse("<View><Labels name=\"l\" toName=\"x\"/></View>").is_err());
        assert!(LabelConfig::parse("<View><Labels").is_err());
    }
}
