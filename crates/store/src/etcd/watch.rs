//! Watches of the etcd backend: an etcd watch stream from a start revision that is
//! reopened, from the revision after the last one received, when the connection
//! breaks (etcd restarted, connection dropped), until the resume window runs out.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, EventType, WatchOptions, WatchStream};

use super::Names;
use crate::error::{EtcdFailure, Unreachable};
use crate::watch::WatchSource;
use crate::{Event, StoreError};

/// Pause between two attempts to reopen a broken watch.
const RETRY: Duration = Duration::from_millis(200);

pub(super) struct EtcdWatch {
    pub(super) client: Client,
    pub(super) names: Arc<Names>,
    pub(super) deadline: Duration,
    pub(super) window: Duration,
    /// The store's etcd key prefix, stripped from keys.
    pub(super) base: String,
    /// The etcd key prefix watched.
    pub(super) key: String,
    /// The start revision of the next (re)open: one after the last revision received.
    pub(super) next: i64,
    pub(super) stream: Option<WatchStream>,
    /// Events received, not yet delivered (they survive a reconnect).
    pub(super) buf: VecDeque<Event>,
    /// When the current outage began.
    pub(super) broken_since: Option<Instant>,
}

impl EtcdWatch {
    /// Opens the stream once, within the deadline.
    pub(super) async fn open_once(&mut self) -> Result<(), StoreError> {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(self.next)
            .with_progress_notify();
        let mut client = self.client.watch_client();
        let key = self.key.clone();
        let names = self.names.clone();
        let stream = names
            .call(self.deadline, async move {
                let mut stream = client.watch(key, Some(opts)).await?;
                // The first response confirms the watch (or refuses it).
                let first = stream.message().await?;
                Ok((stream, first))
            })
            .await;
        let (stream, first) = stream?;
        match first {
            Some(resp) if resp.compact_revision() > 0 => {
                Err(self.compacted(resp.compact_revision()))
            }
            Some(resp) if resp.canceled() => Err(self.canceled(resp.cancel_reason())),
            Some(resp) if resp.created() => {
                self.stream = Some(stream);
                self.broken_since = None;
                Ok(())
            }
            Some(_) => Err(self.canceled("etcd did not confirm the watch")),
            None => Err(self
                .names
                .unavailable(Unreachable::Transport(EtcdFailure(Box::new(
                    etcd_client::Error::WatchError(
                        "the watch stream closed before it was confirmed".into(),
                    ),
                ))))),
        }
    }

    /// Reopens a broken stream, retrying transient failures within the window.
    async fn reopen(&mut self) -> Result<(), StoreError> {
        let since = *self.broken_since.get_or_insert_with(Instant::now);
        loop {
            match self.open_once().await {
                Ok(()) => {
                    tracing::info!(store = %self.names.name, from = self.next, "watch resumed");
                    return Ok(());
                }
                Err(e) if e.is_unavailable() => {
                    let waited = since.elapsed();
                    if waited >= self.window {
                        return Err(self.names.unavailable(Unreachable::Resume {
                            window: self.window,
                            last: Box::new(e),
                        }));
                    }
                    tracing::debug!(store = %self.names.name, error = %e, "watch not resumed yet");
                    tokio::time::sleep(RETRY.min(self.window - waited)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn compacted(&self, compact_revision: i64) -> StoreError {
        StoreError::Compacted {
            requested: u64::try_from(self.next.saturating_sub(1)).unwrap_or(0),
            oldest: u64::try_from(compact_revision).unwrap_or(0),
        }
    }

    fn canceled(&self, reason: &str) -> StoreError {
        StoreError::Etcd {
            store: self.names.name.clone(),
            source: Box::new(etcd_client::Error::WatchError(format!(
                "etcd canceled the watch: {reason}"
            ))),
        }
    }

    fn event(&self, ev: &etcd_client::Event) -> Result<Option<Event>, StoreError> {
        let Some(kv) = ev.kv() else {
            return Ok(None);
        };
        let raw = kv.key();
        let key = std::str::from_utf8(raw).map_err(|_| StoreError::CorruptValue {
            key: String::from_utf8_lossy(raw).into_owned(),
        })?;
        let key = key
            .strip_prefix(self.base.as_str())
            .unwrap_or(key)
            .to_string();
        let revision = u64::try_from(kv.mod_revision()).unwrap_or(0);
        Ok(Some(match ev.event_type() {
            EventType::Put => Event::Put {
                key,
                value: kv.value().to_vec(),
                revision,
            },
            EventType::Delete => Event::Delete { key, revision },
        }))
    }
}

#[async_trait::async_trait]
impl WatchSource for EtcdWatch {
    async fn next(&mut self) -> Result<Event, StoreError> {
        loop {
            if let Some(event) = self.buf.pop_front() {
                return Ok(event);
            }
            let Some(stream) = self.stream.as_mut() else {
                self.reopen().await?;
                continue;
            };
            match stream.message().await {
                Ok(Some(resp)) => {
                    if resp.compact_revision() > 0 {
                        return Err(self.compacted(resp.compact_revision()));
                    }
                    if resp.canceled() {
                        return Err(self.canceled(resp.cancel_reason()));
                    }
                    if resp.events().is_empty() {
                        // A progress notification: every change up to the header's
                        // revision has been sent, so a resume may start after it.
                        if let Some(h) = resp.header()
                            && !resp.created()
                        {
                            self.next = self.next.max(h.revision().saturating_add(1));
                        }
                        continue;
                    }
                    for ev in resp.events() {
                        if let Some(event) = self.event(ev)? {
                            let r = i64::try_from(event.revision()).unwrap_or(i64::MAX);
                            self.next = self.next.max(r.saturating_add(1));
                            self.buf.push_back(event);
                        }
                    }
                }
                Ok(None) | Err(_) => {
                    // etcd went away or the connection broke: resume from `next`.
                    tracing::info!(store = %self.names.name, from = self.next, "watch connection lost, resuming");
                    self.stream = None;
                    self.broken_since.get_or_insert_with(Instant::now);
                }
            }
        }
    }
}
