//! The book's metadata: title, author, narrator, year, description, cover and language. One
//! type from the manifest (or the book imported) to the ID3 and MP4 tags, the M4B, the side
//! files and the library's folders, so each fact has one owner. A leaf.
//!
//! Not responsible for validating the fields (see `manifest`) or writing them (see `audio::tags`,
//! `audio::m4b`, `output::library`).

use std::path::PathBuf;

/// What the book says of itself.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Metadata {
    /// ID3 TIT2, MP4 title; the library's folder and the chapter side files.
    pub title: Option<String>,
    /// ID3 TPE1, MP4 artist and album artist; the library's author folder.
    pub author: Option<String>,
    /// The reader: ID3 TCOM, MP4 composer (where audiobook players show it), `reader.txt`.
    pub narrator: Option<String>,
    /// Four digits: ID3 TDRC, MP4 date.
    pub year: Option<String>,
    /// MP4 description and comment (ID3 leaves it out), `desc.txt`.
    pub description: Option<String>,
    /// A JPEG or PNG (checked when loading): ID3 APIC (front cover), MP4 artwork, `cover.jpg`.
    pub cover: Option<PathBuf>,
    /// A BCP 47 tag, as the book declares it (an imported EPUB's `dc:language`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}
