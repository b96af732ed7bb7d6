//! Docker's JSON for swarm objects (moby's `api/types/swarm`): `Swarm`, `Node` and the
//! `Swarm` section of `/info`.

use std::time::SystemTime;

use netloom_cluster::token::JoinToken;
use serde_json::{Value, json};

use super::state::{ClusterRecord, NodeRecord};

/// RFC 3339 with nanoseconds, as Go prints `time.Time`.
pub fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// The spec a new swarm starts with (swarmkit's defaults).
pub fn default_spec(cert_expiry_ns: u64) -> Value {
    json!({
        "Name": "default",
        "Labels": {},
        "Orchestration": { "TaskHistoryRetentionLimit": 5 },
        "Raft": {
            "SnapshotInterval": 10000,
            "KeepOldSnapshots": 0,
            "LogEntriesForSlowFollowers": 500,
            "ElectionTick": 10,
            "HeartbeatTick": 1
        },
        "Dispatcher": { "HeartbeatPeriod": 5_000_000_000u64 },
        "CAConfig": { "NodeCertExpiry": cert_expiry_ns },
        "TaskDefaults": {},
        "EncryptionConfig": { "AutoLockManagers": false }
    })
}

fn b64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// `TLSInfo` of a root: the trust root and the issuer's subject and public key (DER,
/// base64), which `docker swarm ca` compares across nodes.
pub fn tls_info(root_pem: &str) -> Value {
    let (subject, key) = netloom_cluster::ca::cert_der(root_pem)
        .ok()
        .and_then(|der| netloom_cluster::ca::subject_and_key(&der))
        .map(|(s, k)| (b64(&s), b64(&k)))
        .unwrap_or_default();
    json!({ "TrustRoot": root_pem, "CertIssuerSubject": subject, "CertIssuerPublicKey": key })
}

/// `ClusterInfo` (the `Swarm` object without join tokens).
pub fn cluster_info(c: &ClusterRecord, version: u64, data_path_addr: &str) -> Value {
    json!({
        "ID": c.id,
        "Version": { "Index": version },
        "CreatedAt": time(c.created_at),
        "UpdatedAt": time(c.updated_at),
        "Spec": c.spec,
        "TLSInfo": tls_info(&c.signing_ca.cert_pem),
        "RootRotationInProgress": c.rotation_in_progress,
        "DefaultAddrPool": c.default_addr_pool,
        "SubnetSize": c.subnet_size,
        "DataPathPort": c.data_path_port,
        "DataPathAddress": data_path_addr,
    })
}

/// The join tokens of a cluster.
pub fn tokens(c: &ClusterRecord) -> (String, String) {
    let mk = |secret: &str| {
        JoinToken {
            digest: c.signing_ca.digest(),
            secret: secret.to_string(),
        }
        .to_string()
    };
    (mk(&c.worker_secret), mk(&c.manager_secret))
}

/// `GET /swarm`.
pub fn swarm(c: &ClusterRecord, version: u64, data_path_addr: &str) -> Value {
    let mut v = cluster_info(c, version, data_path_addr);
    let (w, m) = tokens(c);
    v["JoinTokens"] = json!({ "Worker": w, "Manager": m });
    v
}

/// A node (`GET /nodes/{id}`); `up` is what membership says, `leader` whether it is
/// the node that runs the allocators.
pub fn node(
    n: &NodeRecord,
    version: u64,
    cluster: &ClusterRecord,
    up: bool,
    leader: bool,
) -> Value {
    let root = cluster
        .trusted_cas
        .iter()
        .find(|pem| super::state::hex(&netloom_cluster::token::ca_digest(pem)) == n.cert_root)
        .cloned()
        .unwrap_or_else(|| cluster.signing_ca.cert_pem.clone());
    let mut v = json!({
        "ID": n.id,
        "Version": { "Index": version },
        "CreatedAt": time(n.created_at),
        "UpdatedAt": time(n.updated_at),
        "Spec": {
            "Labels": n.labels,
            "Role": n.role.as_str(),
            "Availability": n.availability,
        },
        "Description": {
            "Hostname": n.hostname,
            "Platform": { "Architecture": std::env::consts::ARCH, "OS": "linux" },
            "Resources": resources(),
            "Engine": { "EngineVersion": n.engine_version, "Plugins": [
                { "Type": "Network", "Name": "bridge" },
                { "Type": "Network", "Name": "host" },
                { "Type": "Network", "Name": "macvlan" },
                { "Type": "Network", "Name": "null" },
            ]},
            "TLSInfo": tls_info(&root),
        },
        "Status": {
            "State": if up { "ready" } else { "down" },
            "Addr": n.addr,
        },
    });
    if let Some(ma) = &n.manager_addr {
        v["ManagerStatus"] = json!({
            "Leader": leader,
            "Reachability": if up { "reachable" } else { "unreachable" },
            "Addr": ma,
        });
    }
    v
}

fn resources() -> Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    json!({ "NanoCPUs": cpus * 1_000_000_000, "MemoryBytes": mem })
}

/// The `Swarm` section of `/info` for a node in no swarm.
pub fn info_inactive() -> Value {
    json!({
        "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
        "ControlAvailable": false, "Error": "", "RemoteManagers": Value::Null,
    })
}
