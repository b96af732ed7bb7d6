//! `POST /containers/{id}/rename`: a container's new name, in one store transaction
//! with its endpoints (which carry the name), and in the embedded DNS at once.

use netloom_model::{ContainerStatus, is_valid_name, short_id};
use tracing::info;

use super::{Controller, keys, put};
use crate::error::{CtlError, CtlResult};

/// Checks a new container name with Docker's rules and messages; returns it without `/`.
pub(crate) fn check_new_name(old: &str, new: &str) -> CtlResult<String> {
    if old.is_empty() || new.is_empty() {
        return Err(CtlError::invalid("Neither old nor new names may be empty"));
    }
    let n = new.strip_prefix('/').unwrap_or(new);
    if !is_valid_name(n) || n.len() < 2 {
        return Err(CtlError::invalid(format!(
            "Invalid container name (/{n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(n.to_string())
}

impl Controller {
    /// Renames a container. The name index is the state map under the state lock: the
    /// check that no other container has the name and the change are one step, and the
    /// container and its endpoints are written in one store transaction, so a restart
    /// sees the old name everywhere or the new one everywhere. Its DNS records (name,
    /// `name.network`, on every network) are republished before this returns.
    pub async fn rename_container(&self, key: &str, new_name: &str) -> CtlResult<()> {
        let new = check_new_name(key, new_name)?;
        let (_ctr_lock, mut st, id) = self.lock_container(key, None).await?;
        let ctr = st
            .containers
            .get(&id)
            .cloned()
            .ok_or_else(|| CtlError::not_found(format!("No such container: {key}")))?;
        if ctr.name == new {
            return Err(CtlError::invalid(
                "Renaming a container with the same name as its current name",
            ));
        }
        if ctr.state.status == ContainerStatus::Removing {
            return Err(CtlError::conflict(format!(
                "cannot rename container {}: it is being removed",
                ctr.name
            )));
        }
        if let Some(other) = st.containers.values().find(|c| c.name == new) {
            return Err(CtlError::conflict(format!(
                "Conflict. The container name \"/{new}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            )));
        }
        let mut updated = ctr.clone();
        updated.name = new.clone();
        let mut eps: Vec<netloom_model::Endpoint> =
            st.container_endpoints(&id).into_iter().cloned().collect();
        let mut ops = vec![put(format!("{}{}", keys::CONTAINER, id), &updated)?];
        for ep in eps.iter_mut().filter(|e| !Self::is_gateway_leg(&st, e)) {
            ep.container_name = new.clone();
            ops.push(put(format!("{}{}", keys::ENDPOINT, ep.id), &*ep)?);
        }
        self.commit(ops).await?;
        for ep in eps {
            st.endpoints.insert(ep.id.clone(), ep);
        }
        st.containers.insert(id.clone(), updated.clone());
        self.remember_container(&updated);
        self.publish_dns_for(&st, &id, false);
        info!(container = %new, old = %ctr.name, id = %short_id(&id), "container renamed");
        self.emit(
            "container",
            "rename",
            &id,
            &[("name", new), ("oldName", format!("/{}", ctr.name))],
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_name_rules() {
        assert_eq!(check_new_name("a", "/web_1").ok().as_deref(), Some("web_1"));
        for (old, new, want) in [
            ("a", "", "Neither old nor new names may be empty"),
            ("", "b2", "Neither old nor new names may be empty"),
            ("a", "x", "Invalid container name (/x)"),
            ("a", "-ab", "Invalid container name (/-ab)"),
            ("a", "a/b", "Invalid container name (/a/b)"),
        ] {
            let e = check_new_name(old, new).err().map(|e| e.message);
            assert!(
                e.as_deref().is_some_and(|m| m.starts_with(want)),
                "{new:?}: {e:?}"
            );
        }
    }
}
