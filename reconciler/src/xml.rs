//! A small element writer over quick-xml, shared by the XML documents patchops writes for
//! platforms (WSUS SDP metadata, ConfigMgr SDMPackageXML): indentation, attributes, escaped text.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

/// Writes one document into memory. Writing to a `Vec` cannot fail, so the events' results are
/// dropped.
pub(crate) struct XmlWriter(quick_xml::Writer<Vec<u8>>);

impl XmlWriter {
    /// A document with the XML declaration naming `encoding`.
    pub(crate) fn new(encoding: &str) -> XmlWriter {
        let mut w = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
        let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some(encoding), None)));
        XmlWriter(w)
    }

    fn start(name: &str, attrs: &[(&str, &str)]) -> BytesStart<'static> {
        let mut e = BytesStart::new(name.to_string());
        for a in attrs {
            e.push_attribute(*a);
        }
        e
    }

    /// `<name attrs…>`.
    pub(crate) fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let _ = self.0.write_event(Event::Start(Self::start(name, attrs)));
    }

    /// `<name attrs…/>`.
    pub(crate) fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let _ = self.0.write_event(Event::Empty(Self::start(name, attrs)));
    }

    /// `</name>`.
    pub(crate) fn close(&mut self, name: &str) {
        let _ = self.0.write_event(Event::End(BytesEnd::new(name.to_string())));
    }

    /// `<name attrs…>text</name>`, the text escaped.
    pub(crate) fn text(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.open(name, attrs);
        let _ = self.0.write_event(Event::Text(BytesText::new(text)));
        self.close(name);
    }

    /// The document.
    pub(crate) fn finish(self) -> String {
        String::from_utf8_lossy(&self.0.into_inner()).into_owned()
    }
}
