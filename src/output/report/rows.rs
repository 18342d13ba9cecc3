//! The rows of a report (its segments, its files) kept in memory, or, for a render of many
//! independent rows done a window at a time, spooled to an unnamed temporary file a JSON line
//! each and streamed from there into the report: memory stays flat in the number of rows.
//!
//! Not responsible for what a row says (see `report`).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::ser::{Error as _, SerializeSeq};
use serde::{Serialize, Serializer};

/// Values appended a JSON line each to an unnamed temporary file (gone when dropped), read back
/// in order as often as needed.
#[derive(Debug)]
pub(crate) struct Spool {
    writer: BufWriter<File>,
    count: usize,
}

impl Spool {
    /// A spool in `dir` (the output's folder: the same disk as the files it describes).
    pub(crate) fn new_in(dir: &Path) -> std::io::Result<Self> {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        Ok(Spool {
            writer: BufWriter::with_capacity(64 * 1024, tempfile::tempfile_in(dir)?),
            count: 0,
        })
    }

    /// Appends one value as a line.
    pub(crate) fn push(&mut self, value: &impl Serialize) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.writer, value).map_err(std::io::Error::other)?;
        self.writer.write_all(b"\n")?;
        self.count += 1;
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The lines written, in order, as raw JSON text (each one value). Read once writing is
    /// done and flushed; several readers may be open at once (each keeps its own place).
    pub(crate) fn lines(&self) -> std::io::Result<impl Iterator<Item = std::io::Result<String>>> {
        let file = self.writer.get_ref().try_clone()?;
        Ok(BufReader::with_capacity(64 * 1024, At { file, pos: 0 }).lines())
    }

    /// The values written, read back (as [`Spool::lines`]).
    pub(crate) fn values<T: DeserializeOwned>(
        &self,
    ) -> std::io::Result<impl Iterator<Item = std::io::Result<T>>> {
        Ok(self.lines()?.map(parse_line))
    }

    /// Writes out what is buffered, so that [`Spool::lines`] reads everything pushed.
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

/// A reader of a file at its own position: clones of a file share one offset, so each read
/// seeks to where this reader is first.
struct At {
    file: File,
    pos: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.seek(SeekFrom::Start(self.pos))?;
        let n = self.file.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A sequence serialized from an iterator as it is read (once): a spool's rows go into a
/// report without being held in memory together.
pub(crate) struct SeqFrom<I>(std::cell::RefCell<Option<I>>);

impl<I> SeqFrom<I> {
    pub(crate) fn new(items: I) -> Self {
        SeqFrom(std::cell::RefCell::new(Some(items)))
    }
}

impl<I, T> Serialize for SeqFrom<I>
where
    I: Iterator<Item = std::io::Result<T>>,
    T: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let items = self
            .0
            .borrow_mut()
            .take()
            .ok_or_else(|| S::Error::custom("a streamed sequence is written once"))?;
        let mut seq = serializer.serialize_seq(None)?;
        for item in items {
            seq.serialize_element(&item.map_err(S::Error::custom)?)?;
        }
        seq.end()
    }
}

/// A spooled line read back as a value.
pub(crate) fn parse_line<T: DeserializeOwned>(line: std::io::Result<String>) -> std::io::Result<T> {
    serde_json::from_str(&line?).map_err(|e| std::io::Error::other(e.to_string()))
}

/// A spooled line as the JSON value it is, copied as written.
pub(crate) fn raw(
    line: std::io::Result<String>,
) -> std::io::Result<Box<serde_json::value::RawValue>> {
    serde_json::value::RawValue::from_string(line?)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// A report's rows: in memory (`Vec` methods reach them), or spooled (then only [`Rows::len`]
/// and the report's JSON see them; the summary reads the report's [`super::Brief`]).
#[derive(Debug)]
pub struct Rows<T> {
    kept: Vec<T>,
    spool: Option<Spool>,
}

impl<T> Rows<T> {
    /// Rows spooled a window at a time, all written (nothing is pushed after this).
    pub(crate) fn spooled(mut spool: Spool) -> std::io::Result<Self> {
        spool.flush()?;
        Ok(Rows {
            kept: Vec::new(),
            spool: Some(spool),
        })
    }

    /// How many rows there are, kept or spooled.
    pub fn len(&self) -> usize {
        self.spool.as_ref().map_or(self.kept.len(), Spool::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The spool's lines (none when the rows are kept).
    pub(crate) fn spooled_lines(
        &self,
    ) -> std::io::Result<Option<impl Iterator<Item = std::io::Result<String>>>> {
        self.spool.as_ref().map(Spool::lines).transpose()
    }
}

impl<T> From<Vec<T>> for Rows<T> {
    fn from(kept: Vec<T>) -> Self {
        Rows { kept, spool: None }
    }
}

impl<T> std::ops::Deref for Rows<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.kept
    }
}

impl<T> std::ops::DerefMut for Rows<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.kept
    }
}

impl<'a, T> IntoIterator for &'a Rows<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.kept.iter()
    }
}

impl<'a, T> IntoIterator for &'a mut Rows<T> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.kept.iter_mut()
    }
}

impl<T: Serialize> Serialize for Rows<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.spool {
            None => self.kept.serialize(serializer),
            Some(spool) => {
                let lines = spool.lines().map_err(S::Error::custom)?;
                SeqFrom::new(lines.map(raw)).serialize(serializer)
            }
        }
    }
}
