//! What Docker puts in every container event besides its own attributes: the
//! container's labels, `image` and `name` (moby's `LogContainerEventWithAttributes`).
//! Clients filter on them (`docker-compose events` asks for
//! `label=com.docker.compose.project=NAME`).
//!
//! Events are emitted from places that hold the state lock and from places that do
//! not, so the attributes live in a small map of their own, kept in step with the
//! containers: filled at create, rename and start-up, emptied at destroy.

use std::collections::{BTreeMap, HashMap};

use netloom_model::Container;

use super::Controller;

/// The attributes every event of one container carries.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContainerAttrs {
    labels: BTreeMap<String, String>,
    image: String,
    name: String,
}

/// Container ID → its event attributes.
pub(crate) type AttrMap = std::sync::Mutex<HashMap<String, ContainerAttrs>>;

impl Controller {
    /// Records (or updates) the event attributes of container `c`.
    pub(crate) fn remember_container(&self, c: &Container) {
        self.container_attrs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                c.id.clone(),
                ContainerAttrs {
                    labels: c.labels.clone(),
                    image: c.image.clone(),
                    name: c.name.clone(),
                },
            );
    }

    /// Forgets a removed container's attributes (after its `destroy` event).
    pub(crate) fn forget_container_attrs(&self, id: &str) {
        self.container_attrs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }

    /// Adds container `id`'s labels, `image` and `name` to an event's attributes; what
    /// the event sets itself wins (a `rename` event's `name` is the new one).
    pub(crate) fn add_container_attrs(&self, id: &str, attrs: &mut BTreeMap<String, String>) {
        let map = self
            .container_attrs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(a) = map.get(id) else { return };
        for (k, v) in &a.labels {
            attrs.entry(k.clone()).or_insert_with(|| v.clone());
        }
        attrs
            .entry("image".into())
            .or_insert_with(|| a.image.clone());
        attrs.entry("name".into()).or_insert_with(|| a.name.clone());
    }
}
