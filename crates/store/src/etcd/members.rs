//! The etcd cluster's membership (etcd's Cluster API): list, add a learner, promote
//! it, remove a member. A daemon that runs its own etcd member uses these to add and
//! remove managers; they are not part of [`crate::Store`] because only etcd has them.
//!
//! A new member joins as a *learner* (etcd 3.4 and later): it receives the log but
//! does not vote, so adding it cannot cost the cluster its quorum while it starts;
//! once it has caught up, [`EtcdStore::promote_member`] makes it a voting member.

use etcd_client::MemberAddOptions;

use super::EtcdStore;
use crate::StoreError;

/// A member of the etcd cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// etcd's member ID.
    pub id: u64,
    /// Its `--name` (empty for a member added but not started yet).
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
    /// Its client URLs (empty until it has started).
    pub client_urls: Vec<String>,
    /// Whether it is a learner (a non-voting member).
    pub is_learner: bool,
}

fn member(m: &etcd_client::Member) -> Member {
    Member {
        id: m.id(),
        name: m.name().to_string(),
        peer_urls: m.peer_urls().to_vec(),
        client_urls: m.client_urls().to_vec(),
        is_learner: m.is_learner(),
    }
}

impl EtcdStore {
    /// The members of the cluster.
    pub async fn members(&self) -> Result<Vec<Member>, StoreError> {
        let mut c = self.client.cluster_client();
        let resp = self.call(c.member_list()).await?;
        Ok(resp.members().iter().map(member).collect())
    }

    /// Adds a learner that will listen for peers at `peer_url`; returns it and the
    /// members after the change (for the new member's `--initial-cluster`).
    pub async fn add_learner(&self, peer_url: &str) -> Result<(Member, Vec<Member>), StoreError> {
        let mut c = self.client.cluster_client();
        let resp = self
            .call(c.member_add(
                vec![peer_url.to_string()],
                Some(MemberAddOptions::new().with_is_learner()),
            ))
            .await?;
        let added = resp.member().map(member).ok_or_else(|| StoreError::Etcd {
            store: self.describe_name(),
            source: Box::new(etcd_client::Error::InvalidArgs(
                "etcd added a member but did not say which".into(),
            )),
        })?;
        Ok((added, resp.member_list().iter().map(member).collect()))
    }

    /// Makes learner `id` a voting member; etcd refuses while it has not caught up
    /// with the leader (retry).
    pub async fn promote_member(&self, id: u64) -> Result<(), StoreError> {
        let mut c = self.client.cluster_client();
        self.call(c.member_promote(id)).await.map(|_| ())
    }

    /// Removes member `id` from the cluster; etcd refuses when the change could cost
    /// the cluster its quorum (`--strict-reconfig-check`).
    pub async fn remove_member(&self, id: u64) -> Result<(), StoreError> {
        let mut c = self.client.cluster_client();
        self.call(c.member_remove(id)).await.map(|_| ())
    }

    fn describe_name(&self) -> String {
        self.names.name.clone()
    }
}

impl StoreError {
    /// The message of a request etcd refused (`etcdserver: member not found`), if
    /// this is such an error.
    pub fn etcd_message(&self) -> Option<String> {
        match self {
            StoreError::Etcd { source, .. } => match source.as_ref() {
                etcd_client::Error::GRpcStatus(s) => Some(s.message().to_string()),
                other => Some(other.to_string()),
            },
            _ => None,
        }
    }
}
