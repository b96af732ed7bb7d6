//! [`Watch`]: the backend-independent handle of a watch.

use crate::{Event, StoreError};

/// What a backend implements to feed a [`Watch`]: the next event, in revision order.
/// An error ends the watch.
#[async_trait::async_trait]
pub(crate) trait WatchSource: Send {
    /// The next event (cancel-safe: dropping the future loses nothing).
    async fn next(&mut self) -> Result<Event, StoreError>;
}

/// A watch over the keys under a prefix, from [`crate::Store::watch`].
///
/// [`Watch::recv`] returns the changes in revision order; an error (compaction, an
/// unreachable backend, a closed store) ends the watch, and later calls return
/// [`StoreError::WatchEnded`]. Events are pulled from the backend's history as the
/// caller asks for them, so a slow caller delays nothing and loses nothing: if it
/// falls behind the history it gets [`StoreError::Compacted`].
pub struct Watch {
    prefix: String,
    store: String,
    source: Option<Box<dyn WatchSource>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("prefix", &self.prefix)
            .field("store", &self.store)
            .field("ended", &self.source.is_none())
            .finish()
    }
}

impl Watch {
    pub(crate) fn new(prefix: &str, store: String, source: Box<dyn WatchSource>) -> Watch {
        Watch {
            prefix: prefix.to_string(),
            store,
            source: Some(source),
        }
    }

    /// The prefix watched.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Waits for the next change under the prefix. Cancel-safe: a `recv` dropped
    /// before it returns (in a `select!`, say) loses no event.
    pub async fn recv(&mut self) -> Result<Event, StoreError> {
        let Some(source) = self.source.as_mut() else {
            return Err(StoreError::WatchEnded {
                store: self.store.clone(),
            });
        };
        match source.next().await {
            Ok(event) => Ok(event),
            Err(e) => {
                self.source = None;
                Err(e)
            }
        }
    }
}
