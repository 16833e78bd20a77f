//! A small, bounded element tree read from untrusted XML bytes, and the
//! escaping writer used to produce Omaha documents.
//!
//! Omaha carries all of its data in attributes, so text content is dropped.
//! Every limit here exists because the bytes come from the network: the
//! document size, the nesting depth, the element count and the attribute
//! count are all capped, DTDs are refused outright and only the five
//! predefined XML entities and character references are expanded.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::ParseError;

/// Largest Omaha document accepted, in bytes (1 MiB; real ones are < 4 KiB).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Deepest element nesting accepted (Omaha needs 6: response/app/updatecheck/manifest/packages/package).
pub const MAX_DEPTH: usize = 16;
/// Most elements accepted in one document.
pub const MAX_ELEMENTS: usize = 4096;
/// Most attributes accepted on one element.
pub const MAX_ATTRIBUTES: usize = 64;

/// One XML element: its name, attributes in document order and child elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
}

impl Element {
    /// The value of attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of attribute `name`, or a `Missing` error naming `path@name`.
    pub fn required(&self, path: &str, name: &str) -> Result<&str, ParseError> {
        self.attr(name).ok_or_else(|| ParseError::Missing {
            what: format!("{path}@{name}"),
        })
    }

    /// Child elements called `name`, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The first child element called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// Parse `bytes` into the root element, enforcing every limit of this module.
pub(crate) fn parse_document(bytes: &[u8]) -> Result<Element, ParseError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(ParseError::TooLarge {
            len: bytes.len(),
            max: MAX_DOCUMENT_BYTES,
        });
    }
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().check_end_names = true;
    // Open elements, innermost last; the root is completed when the stack empties.
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| ParseError::Xml {
            position: reader.error_position(),
            message: e.to_string(),
        })?;
        match event {
            Event::DocType(_) => return Err(ParseError::Dtd),
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                return Err(ParseError::Xml {
                    position: reader.buffer_position(),
                    message: format!(
                        "second root element <{}>",
                        String::from_utf8_lossy(start.name().as_ref())
                    ),
                });
            }
            Event::Start(start) => {
                count += 1;
                check_counts(count, stack.len() + 1)?;
                stack.push(element_from(&start)?);
            }
            Event::Empty(start) => {
                count += 1;
                check_counts(count, stack.len() + 1)?;
                let element = element_from(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::End(_) => {
                // check_end_names guarantees the end tag matches the open element.
                let Some(done) = stack.pop() else {
                    return Err(ParseError::Xml {
                        position: reader.buffer_position(),
                        message: "end tag without a start tag".into(),
                    });
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(text) => {
                // Text is ignored, but entity references in it must still be valid:
                // unescaping refuses anything but the predefined entities.
                text.unescape().map_err(|e| ParseError::Xml {
                    position: reader.buffer_position(),
                    message: e.to_string(),
                })?;
            }
            Event::Eof => break,
            Event::CData(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(ParseError::Xml {
            position: reader.buffer_position(),
            message: format!("document ends inside <{}>", stack[stack.len() - 1].name),
        });
    }
    root.ok_or(ParseError::Missing {
        what: "root element".into(),
    })
}

fn check_counts(count: usize, depth: usize) -> Result<(), ParseError> {
    if count > MAX_ELEMENTS {
        return Err(ParseError::Limit {
            what: format!("more than {MAX_ELEMENTS} elements"),
        });
    }
    if depth > MAX_DEPTH {
        return Err(ParseError::Limit {
            what: format!("elements nested deeper than {MAX_DEPTH}"),
        });
    }
    Ok(())
}

fn element_from(start: &BytesStart<'_>) -> Result<Element, ParseError> {
    let name = utf8(start.name().as_ref(), "element name")?;
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| ParseError::Xml {
            position: 0,
            message: format!("in <{name}>: {e}"),
        })?;
        if attrs.len() == MAX_ATTRIBUTES {
            return Err(ParseError::Limit {
                what: format!("more than {MAX_ATTRIBUTES} attributes on <{name}>"),
            });
        }
        let key = utf8(attr.key.as_ref(), "attribute name")?;
        let value = attr.unescape_value().map_err(|e| ParseError::Xml {
            position: 0,
            message: format!("in {name}@{key}: {e}"),
        })?;
        attrs.push((key, value.into_owned()));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
    })
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, ParseError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| ParseError::Xml {
            position: 0,
            message: format!("{what} is not UTF-8"),
        })
}

/// Appends XML text to a `String`: `<name a="v" ...>` with escaped values.
pub(crate) struct XmlWriter {
    out: String,
    depth: usize,
}

impl XmlWriter {
    /// A writer that has already emitted the XML declaration.
    pub fn new() -> XmlWriter {
        XmlWriter {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
            depth: 0,
        }
    }

    fn open_tag(&mut self, name: &str, attrs: &[(&str, Cow<'_, str>)]) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attrs {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            self.out
                .push_str(&quick_xml::escape::escape(value.as_ref()));
            self.out.push('"');
        }
    }

    /// `<name attrs...>` followed by a newline; children come next.
    pub fn start(&mut self, name: &str, attrs: &[(&str, Cow<'_, str>)]) {
        self.open_tag(name, attrs);
        self.out.push_str(">\n");
        self.depth += 1;
    }

    /// `</name>` closing the element opened by the matching `start`.
    pub fn end(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// `<name attrs.../>`.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, Cow<'_, str>)]) {
        self.open_tag(name, attrs);
        self.out.push_str("/>\n");
    }

    /// The finished document.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Push `(key, value)` onto `attrs` when `value` is present.
pub(crate) fn push_opt<'a>(
    attrs: &mut Vec<(&'a str, Cow<'a, str>)>,
    key: &'a str,
    value: &'a Option<String>,
) {
    if let Some(v) = value {
        attrs.push((key, Cow::Borrowed(v.as_str())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_tree_and_ignores_text_and_comments() {
        let doc =
            br#"<?xml version="1.0"?><!-- c --><a x="1"><b y="&lt;&#65;"/>text<c><d/></c></a>"#;
        let root = parse_document(doc).unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(root.attr("x"), Some("1"));
        assert_eq!(root.child("b").unwrap().attr("y"), Some("<A"));
        assert_eq!(root.child("c").unwrap().children[0].name, "d");
    }

    #[test]
    fn rejects_dtd_and_unknown_entities() {
        let dtd = br#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "boom">]><a y="&x;"/>"#;
        assert!(matches!(parse_document(dtd), Err(ParseError::Dtd)));
        let entity = br#"<a y="&x;"/>"#;
        assert!(matches!(
            parse_document(entity),
            Err(ParseError::Xml { .. })
        ));
        let text_entity = br#"<a>&x;</a>"#;
        assert!(matches!(
            parse_document(text_entity),
            Err(ParseError::Xml { .. })
        ));
    }

    #[test]
    fn enforces_limits() {
        let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert!(matches!(
            parse_document(&big),
            Err(ParseError::TooLarge { .. })
        ));
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(matches!(
            parse_document(deep.as_bytes()),
            Err(ParseError::Limit { .. })
        ));
        let many = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS));
        assert!(matches!(
            parse_document(many.as_bytes()),
            Err(ParseError::Limit { .. })
        ));
        let attrs: String = (0..=MAX_ATTRIBUTES)
            .map(|i| format!(" a{i}=\"\""))
            .collect();
        let wide = format!("<a{attrs}/>");
        assert!(matches!(
            parse_document(wide.as_bytes()),
            Err(ParseError::Limit { .. })
        ));
    }

    #[test]
    fn rejects_broken_documents() {
        for doc in [
            &b""[..],
            b"<a>",
            b"<a></b>",
            b"</a>",
            b"<a/><b/>",
            b"<a x=\"1\" x=\"2\"/>",
            b"<a x=\"\xff\"/>",
            b"<\xff/>",
        ] {
            assert!(
                parse_document(doc).is_err(),
                "{:?}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn writer_escapes_attribute_values() {
        let mut w = XmlWriter::new();
        w.start("a", &[("k", Cow::Borrowed("<\"&>"))]);
        w.empty("b", &[]);
        w.end("a");
        let text = w.finish();
        assert!(text.contains(r#"<a k="&lt;&quot;&amp;&gt;">"#), "{text}");
        let root = parse_document(text.as_bytes()).unwrap();
        assert_eq!(root.attr("k"), Some("<\"&>"));
    }
}
