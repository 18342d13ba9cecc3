//! An EPUB opened to be rebuilt rather than narrated: its files, its package document, and
//! the XHTML documents of its spine, read with the same bounds and refusals as an import.
//!
//! Not responsible for what is made of them (see `output::readalong`).

use super::package::read_package;
use super::{Archive, open};

/// A source book: its archive, its package document and its spine's documents.
pub(crate) struct SourceBook {
    archive: Archive,
    /// The package document's path in the book, and its text.
    pub(crate) opf_path: String,
    pub(crate) opf: String,
    /// The package's `version` (`3.0`, `2.0`).
    pub(crate) version: String,
    /// The spine's XHTML documents in the book, in reading order: (the archive's name for it,
    /// manifest item id).
    pub(crate) documents: Vec<(String, String)>,
    /// Every file's name in the book, in the archive's order.
    pub(crate) names: Vec<String>,
}

impl SourceBook {
    /// Opens an EPUB's bytes.
    pub(crate) fn open(bytes: Vec<u8>) -> Result<Self, String> {
        let (archive, opf_path, opf) = open(bytes)?;
        let package = read_package(&opf, &opf_path)?;
        let documents = package
            .spine
            .iter()
            .filter_map(|(idref, _)| {
                let item = package.items.get(idref)?;
                // By the archive's own name (the package may compose it otherwise).
                let name = archive.entry_name(&item.href)?;
                item.media_type
                    .contains("html")
                    .then(|| (name, idref.clone()))
            })
            .collect();
        let names = archive
            .zip
            .file_names()
            .filter_map(Result::ok)
            .map(|n| n.into_owned())
            .collect::<Vec<_>>();
        Ok(SourceBook {
            archive,
            opf_path,
            opf,
            version: package.version,
            documents,
            names,
        })
    }

    /// One file of the book, within the same bounds as an import's.
    pub(crate) fn bytes(&mut self, name: &str) -> Result<Vec<u8>, String> {
        self.archive.bytes(name)
    }

    /// One file of the book as UTF-8 text.
    pub(crate) fn text(&mut self, name: &str) -> Result<String, String> {
        self.archive.text(name)
    }
}
