//! The conformance suite on [`MemoryStore`].

mod conformance;

use std::sync::Arc;

use conformance::local::{HISTORY, Local};
use netloom_store::{LocalOptions, MemoryStore};

async fn fixture() -> Option<Local> {
    let store = MemoryStore::with_options(LocalOptions::default().with_history(HISTORY));
    Some(Local {
        store: Arc::new(store),
        _dir: None,
    })
}

conformance_tests!(fixture);
