//! A start that fails removes an `--rm` container, whatever step failed (as dockerd's
//! `containerStart` does in its deferred cleanup): a client that waits for the
//! container's removal (`docker run --rm` waits with `condition=removed`) then ends.

use std::sync::Arc;

use netloom_model::ContainerStatus;
use tracing::info;

use super::Controller;
use super::containers::StartOutcome;
use crate::error::CtlResult;

impl Controller {
    /// Starts a container: sandbox, endpoints, files, process. If the start fails, an
    /// `--rm` container that is not running (nor being removed or started by someone
    /// else) is removed, and the start's error is returned.
    pub async fn start_container(self: &Arc<Self>, key: &str) -> CtlResult<StartOutcome> {
        let res = self.start_container_once(key).await;
        if res.is_err() {
            self.remove_unstarted(key).await;
        }
        res
    }

    /// Removes `--rm` container `key` after its start failed.
    async fn remove_unstarted(&self, key: &str) {
        let Ok((_ctr_lock, mut st, id)) = self.lock_container(key, None).await else {
            return;
        };
        let Some(c) = st.containers.get(&id).cloned() else {
            return;
        };
        let idle = matches!(
            c.state.status,
            ContainerStatus::Created | ContainerStatus::Exited
        );
        if c.auto_remove && idle && !self.is_starting(&id) {
            info!(container = %c.name, "removing an --rm container whose start failed");
            // Nothing of the failed start is left (it rolled back); a sandbox file left
            // by an early failure goes with the container's networking.
            self.teardown_networking(&mut st, &c).await;
            self.destroy_container(&mut st, &c).await;
        }
    }
}
