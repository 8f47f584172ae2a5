//! INCEpTION's external recommender protocol: `POST /predict` (or `/inception/predict`) with the
//! document as a UIMA CAS in XMI, the target layer (a span type such as
//! `de.tudarmstadt.ukp.dkpro.core.api.ner.type.NamedEntity`) and feature; the answer is the same XMI
//! with one predicted annotation per accepted answer: its concept in the feature,
//! `inception_internal_predicted="true"`, and `<feature>_score` when the type system has it.
//!
//! The XMI is edited, not rebuilt: the new elements go before the sofa's `cas:View`, whose `members`
//! gain their ids, and the layer's namespace is declared on the root when the document has none. UIMA
//! offsets count UTF-16 code units (Java strings); medqa's count characters, so they are converted.

use anyhow::{bail, Context, Result};
use quick_xml::events::{BytesStart, Event};

/// What a prediction request says.
#[derive(Debug)]
pub struct Request {
    pub layer: String,
    pub feature: String,
    pub xmi: String,
    pub type_system: String,
}

impl Request {
    /// From the request's JSON (`metadata.layer`, `metadata.feature`, `document.xmi`, `typeSystem`).
    pub fn from_json(v: &serde_json::Value) -> Result<Self> {
        let s = |path: &[&str]| -> Result<String> {
            let mut at = v;
            for p in path {
                at = &at[*p];
            }
            at.as_str()
                .map(str::to_owned)
                .with_context(|| format!("\"{}\" must be a string", path.join(".")))
        };
        Ok(Self {
            layer: s(&["metadata", "layer"])?,
            feature: s(&["metadata", "feature"])?,
            xmi: s(&["document", "xmi"])?,
            type_system: s(&["typeSystem"]).unwrap_or_default(),
        })
    }
}

/// A predicted span: character offsets into the sofa text, the label, its score.
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub label: String,
    pub score: f64,
}

/// Where things are in a CAS XMI document.
struct Layout {
    /// The initial view's sofa: its xmi:id and text.
    sofa_id: String,
    text: String,
    /// Byte ranges of the root element's start tag and of the sofa's `cas:View` tag.
    root: (usize, usize),
    view: Option<(usize, usize)>,
    max_id: u64,
    /// Prefix → namespace declared on the root.
    namespaces: Vec<(String, String)>,
}

fn attr(e: &BytesStart, key: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == key.as_bytes())
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

fn layout(xmi: &str) -> Result<Layout> {
    let mut reader = quick_xml::Reader::from_str(xmi);
    let (mut root, mut view, mut max_id) = (None, None, 0u64);
    let mut sofa: Option<(String, String)> = None;
    let mut views: Vec<(String, (usize, usize))> = Vec::new();
    let mut namespaces = Vec::new();
    loop {
        let start = reader.buffer_position() as usize;
        let event = reader
            .read_event()
            .map_err(|e| anyhow::anyhow!("document.xmi is not XML: {e}"))?;
        let end = reader.buffer_position() as usize;
        let e = match &event {
            Event::Start(e) | Event::Empty(e) => e.clone(),
            Event::Eof => break,
            _ => continue,
        };
        if root.is_none() {
            root = Some((start, end));
            for a in e.attributes().flatten() {
                let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                if let Some(prefix) = key.strip_prefix("xmlns:") {
                    let value = a
                        .unescape_value()
                        .map(|v| v.into_owned())
                        .unwrap_or_default();
                    namespaces.push((prefix.to_owned(), value));
                }
            }
        }
        if let Some(id) = attr(&e, "xmi:id").and_then(|i| i.parse::<u64>().ok()) {
            max_id = max_id.max(id);
        }
        match e.name().as_ref() {
            b"cas:Sofa"
                if sofa.is_none() || attr(&e, "sofaID").as_deref() == Some("_InitialView") =>
            {
                if let Some(id) = attr(&e, "xmi:id") {
                    sofa = Some((id, attr(&e, "sofaString").unwrap_or_default()));
                }
            }
            b"cas:View" => {
                if let Some(s) = attr(&e, "sofa") {
                    views.push((s, (start, end)));
                }
            }
            _ => {}
        }
    }
    let Some((sofa_id, text)) = sofa else {
        bail!("document.xmi has no cas:Sofa (no document text)");
    };
    if let Some((_, range)) = views.into_iter().find(|(s, _)| *s == sofa_id) {
        view = Some(range);
    }
    Ok(Layout {
        sofa_id,
        text,
        root: root.context("document.xmi has no root element")?,
        view,
        max_id,
        namespaces,
    })
}

/// The document's text (the initial view's sofa string).
pub fn text(xmi: &str) -> Result<String> {
    Ok(layout(xmi)?.text)
}

fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// UTF-16 offsets of every character boundary of `text` (index = character offset).
fn utf16_offsets(text: &str) -> Vec<usize> {
    let mut out = Vec::with_capacity(text.len() + 1);
    let mut at = 0;
    out.push(0);
    for c in text.chars() {
        at += c.len_utf16();
        out.push(at);
    }
    out
}

/// `xmi` with `spans` added as annotations of `layer`, the label in `feature`.
pub fn add_predictions(req: &Request, spans: &[Span]) -> Result<String> {
    let xmi = &req.xmi;
    let l = layout(xmi)?;
    let (package, name) = req.layer.rsplit_once('.').with_context(|| {
        format!(
            "metadata.layer {:?} is not a qualified type name",
            req.layer
        )
    })?;
    let namespace = format!("http:///{}.ecore", package.replace('.', "/"));
    let declared = l.namespaces.iter().find(|(_, ns)| *ns == namespace);
    let prefix = declared.map_or_else(|| "medqapred".to_owned(), |(p, _)| p.clone());
    let with_score = req
        .type_system
        .contains(&format!("<name>{}_score</name>", req.feature));
    let offsets = utf16_offsets(&l.text);
    let mut elements = String::new();
    let mut ids = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        let (Some(&begin), Some(&end)) = (offsets.get(s.start), offsets.get(s.end)) else {
            bail!("a span ({}..{}) lies outside the document", s.start, s.end);
        };
        let id = l.max_id + 1 + i as u64;
        ids.push(id.to_string());
        elements.push_str(&format!(
            "<{prefix}:{name} xmi:id=\"{id}\" sofa=\"{}\" begin=\"{begin}\" end=\"{end}\" {}=\"{}\" inception_internal_predicted=\"true\"",
            l.sofa_id,
            req.feature,
            escape(&s.label)
        ));
        if with_score {
            elements.push_str(&format!(" {}_score=\"{}\"", req.feature, s.score));
        }
        elements.push_str("/>");
    }
    // The root start tag, with the namespace when the document does not declare it.
    let root_tag = &xmi[l.root.0..l.root.1];
    let root_tag = if declared.is_none() {
        let close = if root_tag.ends_with("/>") { 2 } else { 1 };
        format!(
            "{} xmlns:{prefix}=\"{}\"{}",
            &root_tag[..root_tag.len() - close],
            escape(&namespace),
            &root_tag[root_tag.len() - close..]
        )
    } else {
        root_tag.to_owned()
    };
    let mut out = String::with_capacity(xmi.len() + elements.len() + 64);
    out.push_str(&xmi[..l.root.0]);
    out.push_str(&root_tag);
    match l.view {
        Some((vs, ve)) => {
            out.push_str(&xmi[l.root.1..vs]);
            out.push_str(&elements);
            out.push_str(&with_members(&xmi[vs..ve], &ids)?);
            out.push_str(&xmi[ve..]);
        }
        None => {
            // No view for the sofa yet: one after the new elements, before the root closes.
            let close = xmi
                .rfind("</")
                .context("document.xmi's root is not closed")?;
            out.push_str(&xmi[l.root.1..close]);
            out.push_str(&elements);
            out.push_str(&format!(
                "<cas:View sofa=\"{}\" members=\"{}\"/>",
                l.sofa_id,
                ids.join(" ")
            ));
            out.push_str(&xmi[close..]);
        }
    }
    Ok(out)
}

/// A `cas:View` tag with `ids` added to its `members`.
fn with_members(tag: &str, ids: &[String]) -> Result<String> {
    let mut reader = quick_xml::Reader::from_str(tag);
    let e = match reader.read_event().context("the cas:View tag")? {
        Event::Start(e) | Event::Empty(e) => e.into_owned(),
        _ => bail!("the cas:View tag is not an element"),
    };
    let empty = tag.trim_end().ends_with("/>");
    let mut members = attr(&e, "members").unwrap_or_default();
    for id in ids {
        if !members.is_empty() {
            members.push(' ');
        }
        members.push_str(id);
    }
    let mut out = String::from("<cas:View");
    for a in e.attributes().flatten() {
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        if key != "members" {
            let value = a
                .unescape_value()
                .map(|v| v.into_owned())
                .unwrap_or_default();
            out.push_str(&format!(" {key}=\"{}\"", escape(&value)));
        }
    }
    out.push_str(&format!(" members=\"{members}\""));
    out.push_str(if empty { "/>" } else { ">" });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const XMI: &str = r#"<?xml version='1.0' encoding='UTF-8'?>
<xmi:XMI xmlns:xmi="http://www.omg.org/XMI" xmlns:cas="http:///uima/cas.ecore" xmi:version="2.0"><cas:NULL xmi:id="0"/><cas:Sofa xmi:id="1" sofaNum="1" sofaID="_InitialView" sofaString="😀 Glicemia 7,1 &amp; apixaban."/><cas:View sofa="1" members=""/></xmi:XMI>"#;

    #[test]
    fn predictions_go_into_the_xmi_with_utf16_offsets() {
        assert_eq!(text(XMI).unwrap(), "😀 Glicemia 7,1 & apixaban.");
        let req = Request {
            layer: "de.tudarmstadt.ukp.dkpro.core.api.ner.type.NamedEntity".into(),
            feature: "value".into(),
            xmi: XMI.into(),
            type_system: "<name>value_score</name>".into(),
        };
        // "7,1" is characters 11..14: UTF-16 12..15 after the emoji's surrogate pair.
        let out = add_predictions(
            &req,
            &[Span {
                start: 11,
                end: 14,
                label: "glucose".into(),
                score: 0.5,
            }],
        )
        .unwrap();
        assert!(
            out.contains(
                r#"xmlns:medqapred="http:///de/tudarmstadt/ukp/dkpro/core/api/ner/type.ecore""#
            ),
            "{out}"
        );
        assert!(
            out.contains(r#"<medqapred:NamedEntity xmi:id="2" sofa="1" begin="12" end="15" value="glucose" inception_internal_predicted="true" value_score="0.5"/><cas:View sofa="1" members="2"/>"#),
            "{out}"
        );
        assert!(text(&out).is_ok());
        assert!(add_predictions(
            &req,
            &[Span {
                start: 0,
                end: 99,
                label: "x".into(),
                score: 0.0
            }]
        )
        .is_err());
        assert!(text("<xmi:XMI/>").is_err());
    }
}
