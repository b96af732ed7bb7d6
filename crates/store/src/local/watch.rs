//! Watches of the local backends: each watcher pulls from the history table at
//! its own pace, woken by the engine's committed-revision channel.

use std::collections::VecDeque;

use tokio::sync::watch;

use super::engine::EngineRef;
use crate::watch::WatchSource;
use crate::{Event, Revision, StoreError};

pub(super) struct LocalWatch {
    pub(super) engine: EngineRef,
    pub(super) store: String,
    pub(super) prefix: String,
    /// Every revision up to this one has been read into `buf` (or delivered).
    pub(super) cursor: Revision,
    pub(super) buf: VecDeque<Event>,
    pub(super) committed: watch::Receiver<Revision>,
}

impl LocalWatch {
    fn closed(&self) -> StoreError {
        StoreError::WatchEnded {
            store: self.store.clone(),
        }
    }
}

#[async_trait::async_trait]
impl WatchSource for LocalWatch {
    async fn next(&mut self) -> Result<Event, StoreError> {
        loop {
            if let Some(event) = self.buf.pop_front() {
                return Ok(event);
            }
            let latest = *self.committed.borrow_and_update();
            if latest > self.cursor {
                let Some(engine) = self.engine.upgrade() else {
                    return Err(self.closed());
                };
                engine.read_history(&self.prefix, &mut self.cursor, latest, &mut self.buf)?;
                continue;
            }
            if self.committed.changed().await.is_err() {
                return Err(self.closed());
            }
        }
    }
}
