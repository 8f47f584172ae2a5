//! The Label Studio ML backend protocol (`/health`, `/setup`, `/predict`): tasks in, span pre-annotations
//! out, with character offsets into the task's text as Label Studio's `Labels` over `Text` expect.
//!
//! The labelling configuration names the pieces: `<Labels name="label" toName="text">` with one
//! `<Label value="…"/>` per concept to pre-annotate, over `<Text name="text" value="$text"/>` whose
//! `$text` is the task data's key. Concepts the configuration has no label for are left out.
//!
//! The `Text` object may say how the task holds its text: `valueType="url"` (the task holds a link,
//! fetched as the editor fetches it: [`crate::task_links`]), `encoding="base64"` or `"base64unicode"`
//! (decoded as the editor decodes them before it counts offsets). `HyperText` (offsets are XPaths into
//! HTML) is refused with the reason, since spans over markup's characters would mean nothing.

use anyhow::{bail, Result};
use quick_xml::events::Event;
pub use text::label_studio::TextEncoding;

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
    /// How the task data holds the text (the `Text` object's `encoding`).
    pub encoding: TextEncoding,
    /// The task data holds a link to the text (`valueType="url"`).
    pub behind_link: bool,
    /// Whether a region carries its text (`saveTextResult`; by default not for texts behind links, so
    /// that notes kept out of Label Studio's database stay out of it).
    pub save_text: bool,
}

impl LabelConfig {
    pub fn parse(xml: &str) -> Result<Self> {
        let mut reader = quick_xml::Reader::from_str(xml);
        let (mut from_name, mut to_name) = (None, None);
        let mut texts: Vec<TextObject> = Vec::new();
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
                tag @ (b"Text" | b"HyperText") => {
                    if let (Some(name), Some(value)) = (attr("name"), attr("value")) {
                        texts.push(TextObject {
                            hypertext: tag == b"HyperText",
                            name,
                            value,
                            value_type: attr("valueType"),
                            encoding: attr("encoding"),
                            save_text_result: attr("saveTextResult"),
                        });
                    }
                }
                _ => {}
            }
        }
        let (Some(from_name), Some(to_name)) = (from_name, to_name) else {
            bail!("label_config has no <Labels name=… toName=…> control");
        };
        let Some(text) = texts.iter().find(|t| t.name == to_name) else {
            bail!("label_config has no <Text name=\"{to_name}\" value=\"$…\"> for the labels");
        };
        if text.hypertext {
            bail!(
                "label_config labels <HyperText name=\"{to_name}\">, whose regions are XPaths into HTML; \
                 medqa pre-annotates <Text>, with character offsets: show the notes with <Text>"
            );
        }
        let behind_link = match text.value_type.as_deref() {
            None | Some("text") => false,
            Some("url") => true,
            Some(other) => bail!(
                "label_config's <Text name=\"{to_name}\"> has valueType=\"{other}\"; Label Studio knows \
                 text and url"
            ),
        };
        let save_text = match text.save_text_result.as_deref() {
            Some("yes") => true,
            Some("no") => false,
            _ => !behind_link,
        };
        let encoding = match text.encoding.as_deref() {
            None => TextEncoding::Plain,
            Some(name) => name
                .parse()
                .map_err(|e| anyhow::anyhow!("label_config's <Text name=\"{to_name}\">: {e:#}"))?,
        };
        Ok(Self {
            from_name,
            to_name,
            data_key: text.value.trim_start_matches('$').to_owned(),
            labels,
            encoding,
            behind_link,
            save_text,
        })
    }

    /// The note a task's data value holds, decoded as the configuration says: offsets index into it,
    /// as they do in Label Studio's editor.
    pub fn text_of(&self, value: &str) -> Result<String> {
        self.encoding.decode(value)
    }
}

/// A `Text` or `HyperText` object of the configuration, with what says how its task value is read.
struct TextObject {
    hypertext: bool,
    name: String,
    value: String,
    value_type: Option<String>,
    encoding: Option<String>,
    save_text_result: Option<String>,
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
                encoding: TextEncoding::Plain,
                behind_link: false,
                save_text: true,
            }
        );
        assert!(LabelConfig::parse("<View><Text name=\"t\" value=\"$t\"/></View>").is_err());
        assert!(LabelConfig::parse("<View><Labels name=\"l\" toName=\"x\"/></View>").is_err());
        assert!(LabelConfig::parse("<View><Labels").is_err());
    }

    fn config(text_attrs: &str, tag: &str) -> Result<LabelConfig> {
        LabelConfig::parse(&format!(
            r#"<View><Labels name="l" toName="t"><Label value="age"/></Labels><{tag} name="t" value="$text" {text_attrs}/></View>"#
        ))
    }

    #[test]
    fn the_text_objects_encoding_decodes_task_values() {
        let unicode = config(r#"encoding="base64unicode""#, "Text").unwrap();
        assert_eq!(unicode.encoding, TextEncoding::Base64Unicode);
        assert_eq!(unicode.text_of("w67Dog==").unwrap(), "îâ");
        let plain = config(r#"encoding="none""#, "Text").unwrap();
        assert_eq!(plain.text_of("w67Dog==").unwrap(), "w67Dog==");
    }

    #[test]
    fn markup_and_unknown_value_types_or_encodings_are_refused() {
        let why = |attrs: &str, tag: &str| format!("{:#}", config(attrs, tag).unwrap_err());
        assert!(why("", "HyperText").contains("XPaths"));
        assert!(why(r#"encoding="rot13""#, "Text").contains("encoding \"rot13\""));
        assert!(why(r#"valueType="html""#, "Text").contains("valueType=\"html\""));
        assert!(config(r#"valueType="text""#, "Text").is_ok());
    }

    #[test]
    fn texts_behind_links_keep_their_text_out_of_regions_unless_told() {
        let linked = config(r#"valueType="url" encoding="base64unicode""#, "Text").unwrap();
        assert!(linked.behind_link && !linked.save_text);
        assert_eq!(linked.encoding, TextEncoding::Base64Unicode);
        let told = config(r#"valueType="url" saveTextResult="yes""#, "Text").unwrap();
        assert!(told.behind_link && told.save_text);
        let inline = config(r#"saveTextResult="no""#, "Text").unwrap();
        assert!(!inline.behind_link && !inline.save_text);
        assert!(config("", "Text").unwrap().save_text);
    }
}
