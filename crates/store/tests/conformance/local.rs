//! The fixture of the local backends (`memory.rs`, `embedded.rs`).

use std::sync::Arc;

use netloom_store::{Expect, Op, Revision, Store};

/// Revisions of history the local test stores keep.
pub const HISTORY: u64 = 200;

pub struct Local {
    pub store: Arc<dyn Store>,
    pub _dir: Option<tempfile::TempDir>,
}

#[async_trait::async_trait]
impl super::Fixture for Local {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    async fn client(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Writes filler revisions until the bounded history has moved past `upto`.
    async fn compact(&self, upto: Revision) {
        while self.store.revision().await.unwrap().saturating_sub(HISTORY) < upto {
            self.store
                .apply(vec![Op::put("zz-filler", "x", Expect::Any)])
                .await
                .unwrap();
        }
    }

    fn bounded_history(&self) -> Option<u64> {
        Some(HISTORY)
    }
}
