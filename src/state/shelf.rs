//! Where shared cache entries are kept, by key: the small surface the rest of narrate needs
//! of an object store (see `bucket` for the one narrate has, `shared` for what it holds).

use std::sync::Arc;

use futures::TryStreamExt as _;
use futures::future::BoxFuture;

/// The most an entry may hold: the longest answer of any format with its timings.
pub(crate) const MAX_ENTRY_BYTES: u64 = 512 * 1024 * 1024;

/// What a create-only put did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Created {
    /// The entry is now on the shelf, as given.
    New,
    /// Another machine put one first.
    Exists,
}

/// Where shared entries are kept, by key: the small surface the rest of narrate needs.
pub(crate) trait Shelf: Send + Sync + std::fmt::Debug {
    /// The entry of `key`, or `None` when there is none; bounded by [`MAX_ENTRY_BYTES`].
    fn read(&self, key: &str) -> BoxFuture<'_, Result<Option<Vec<u8>>, String>>;
    /// Whether an entry of `key` is there.
    fn contains(&self, key: &str) -> BoxFuture<'_, Result<bool, String>>;
    /// Puts the entry of `key` unless one is there already.
    fn create(&self, key: &str, entry: Vec<u8>) -> BoxFuture<'_, Result<Created, String>>;
    /// Where the shelf is, for messages (never with credentials).
    fn describe(&self) -> &str;
}

/// Reads at most `limit` bytes of a stream, refusing more.
pub(crate) async fn read_bounded<S, E>(stream: S, limit: u64) -> Result<Vec<u8>, String>
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>>,
    E: std::fmt::Display,
{
    let mut out = Vec::new();
    let mut stream = std::pin::pin!(stream.map_err(|e| e.to_string()));
    while let Some(chunk) = stream.try_next().await? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(format!("the object is over {limit} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The shelf a cache consults, shared by every job of a run.
pub(crate) type SharedShelf = Arc<dyn Shelf>;
