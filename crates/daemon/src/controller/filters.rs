//! `GET /containers/json` with every `docker ps` filter, as moby's `daemon/list.go`
//! applies them: `id`, `name` (regular expressions), `label`, `status`, `exited`,
//! `health`, `ancestor` (an image by name or ID, and the images built on it),
//! `before`/`since` (creation order), `volume`, `network`, `publish`, `expose`,
//! `isolation` and `is-task`. Anything else is refused with Docker's message.

use std::collections::{BTreeMap, BTreeSet};

use netloom_model::{Container, ContainerStatus, Image};

use super::{ContainerView, Controller, State};
use crate::error::{CtlError, CtlResult};

/// The filters `docker ps` knows.
pub const PS_FILTERS: &[&str] = &[
    "ancestor",
    "before",
    "exited",
    "id",
    "isolation",
    "label",
    "name",
    "status",
    "health",
    "since",
    "volume",
    "network",
    "is-task",
    "publish",
    "expose",
];

const STATES: &[&str] = &[
    "created",
    "running",
    "paused",
    "restarting",
    "removing",
    "exited",
    "dead",
];
const HEALTHS: &[&str] = &["none", "starting", "healthy", "unhealthy"];

/// One filter key's values.
type Values = Vec<String>;

/// Docker's `filters.Match`: an exact value, or a regular expression found anywhere.
fn matches_any(values: &[regex::Regex], exact: &[String], s: &str) -> bool {
    exact.iter().any(|v| v == s) || values.iter().any(|r| r.is_match(s))
}

/// Port filter values (`80`, `80/udp`, `8000-8010/tcp`) as `port/proto` keys.
fn port_set(key: &str, values: &[String]) -> CtlResult<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for v in values {
        if v.contains(':') {
            return Err(CtlError::invalid(format!(
                "filter for '{key}' should not contain ':': {v}"
            )));
        }
        let (ports, proto) = v.split_once('/').unwrap_or((v, "tcp"));
        let bad = || {
            CtlError::invalid(format!(
                "error while looking up for {key} {v}: invalid port range {ports:?}: use PORT[/PROTO] or START-END[/PROTO]"
            ))
        };
        let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
        let a: u16 = a.parse().map_err(|_| bad())?;
        let b: u16 = b.parse().map_err(|_| bad())?;
        if a > b || proto.is_empty() {
            return Err(bad());
        }
        for p in a..=b {
            out.insert(format!("{p}/{}", proto.to_ascii_lowercase()));
        }
    }
    Ok(out)
}

/// Docker's `MatchKVList`: every `key[=value]` holds in `labels`.
fn labels_match(want: &[String], labels: &BTreeMap<String, String>) -> bool {
    want.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(w),
    })
}

/// The IDs of `img` and of every image built on it (whose layers start with its own).
fn with_children(st: &State, img: &Image, into: &mut BTreeSet<String>) {
    into.insert(img.id.clone());
    let base: Vec<&str> = img.layers.iter().map(|l| l.diff_id.as_str()).collect();
    if base.is_empty() {
        return;
    }
    for other in st.images.values() {
        let layers: Vec<&str> = other.layers.iter().map(|l| l.diff_id.as_str()).collect();
        if layers.len() > base.len() && layers.starts_with(&base) {
            into.insert(other.id.clone());
        }
    }
}

/// A container named by `before=`/`since=` (ID, unique prefix or name).
fn pivot<'a>(st: &'a State, key: &str, v: &str) -> CtlResult<&'a Container> {
    st.find_container(v).map_err(|e| CtlError {
        message: format!("{} (in filter '{key}={v}')", e.message),
        ..e
    })
}

/// The checked filters of one list request.
struct Plan {
    exited: Vec<i32>,
    images: Option<BTreeSet<String>>,
    before: Option<String>,
    since: Option<String>,
    is_task: Option<bool>,
    publish: BTreeSet<String>,
    expose: BTreeSet<String>,
    names: (Vec<regex::Regex>, Values),
    ids: Values,
    status: (Vec<regex::Regex>, Values),
}

fn regexes(values: &[String]) -> Vec<regex::Regex> {
    values
        .iter()
        .filter_map(|v| regex::Regex::new(v).ok())
        .collect()
}

fn plan(st: &State, f: &BTreeMap<String, Values>, all: &mut bool) -> CtlResult<Plan> {
    for k in f.keys() {
        if !PS_FILTERS.contains(&k.as_str()) {
            return Err(CtlError::invalid(format!("invalid filter '{k}'")));
        }
    }
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let mut exited = Vec::new();
    for v in get("exited") {
        exited.push(v.parse::<i32>().map_err(|_| {
            CtlError::invalid(format!(
                "invalid filter 'exited={v}': strconv.Atoi: parsing \"{v}\": invalid syntax"
            ))
        })?);
    }
    for v in get("status") {
        if !STATES.contains(&v.as_str()) {
            return Err(CtlError::invalid(format!(
                "invalid filter 'status={v}': invalid value for state ({v}): must be one of {}",
                STATES.join(", ")
            )));
        }
        *all = true;
    }
    for v in get("health") {
        if !HEALTHS.contains(&v.as_str()) {
            return Err(CtlError::invalid(format!(
                "invalid filter 'health={v}': invalid value for health ({v}): must be one of {}",
                HEALTHS.join(", ")
            )));
        }
    }
    let is_task = match f.get("is-task") {
        None => None,
        Some(v) => {
            let t = v.iter().any(|x| x == "1" || x == "true");
            let n = v.iter().any(|x| x == "0" || x == "false");
            if t == n {
                return Err(CtlError::invalid(format!(
                    "invalid filter 'is-task=[{}]'",
                    v.join(" ")
                )));
            }
            Some(t)
        }
    };
    let before = get("before")
        .last()
        .map(|v| pivot(st, "before", v).map(|c| c.id.clone()))
        .transpose()?;
    let since = get("since")
        .last()
        .map(|v| pivot(st, "since", v).map(|c| c.id.clone()))
        .transpose()?;
    let images = f.get("ancestor").map(|values| {
        let mut ids = BTreeSet::new();
        for v in values {
            // As Docker: an image that does not exist matches nothing.
            if let Ok(img) = super::images::find_image(st, v) {
                with_children(st, img, &mut ids);
            }
        }
        ids
    });
    let names = get("name");
    let status = get("status");
    Ok(Plan {
        exited,
        images,
        before,
        since,
        is_task,
        publish: port_set("publish", &get("publish"))?,
        expose: port_set("expose", &get("expose"))?,
        names: (regexes(&names), names),
        ids: get("id"),
        status: (regexes(&status), status),
    })
}

/// Whether container `c` passes the filters other than `before`/`since`/`limit`.
fn keep(st: &State, c: &Container, f: &BTreeMap<String, Values>, p: &Plan, all: bool) -> bool {
    let running = c.is_running() || c.state.status == ContainerStatus::Restarting;
    if !running && !all {
        return false;
    }
    if !p.names.1.is_empty()
        && !matches_any(&p.names.0, &p.names.1, &c.name)
        && !matches_any(&p.names.0, &p.names.1, &format!("/{}", c.name))
    {
        return false;
    }
    if !p.ids.is_empty()
        && !p.ids.iter().any(|v| {
            c.id == *v
                || (c.id.starts_with(v.as_str())
                    && st
                        .containers
                        .keys()
                        .filter(|k| k.starts_with(v.as_str()))
                        .count()
                        == 1)
        })
    {
        return false;
    }
    if p.is_task == Some(true) {
        // netloom runs no swarm tasks as containers.
        return false;
    }
    if let Some(l) = f.get("label")
        && !labels_match(l, &c.labels)
    {
        return false;
    }
    let exited_with = |codes: &[i32]| {
        codes.contains(&c.state.exit_code) && !running && !c.state.started_at.is_empty()
    };
    if !p.exited.is_empty() && !exited_with(&p.exited) {
        return false;
    }
    if !p.status.1.is_empty() && !matches_any(&p.status.0, &p.status.1, c.state.status.as_str()) {
        return false;
    }
    if let Some(h) = f.get("health")
        && !h.contains(&super::health::status_of(c))
    {
        return false;
    }
    if let Some(vols) = f.get("volume") {
        let mut keys: Vec<String> = Vec::new();
        for b in &c.host.binds {
            let mut parts = b.splitn(3, ':');
            keys.extend(parts.next().map(str::to_string));
            keys.extend(parts.next().map(str::to_string));
        }
        for m in &c.host.mounts {
            keys.push(m.source.clone());
            keys.push(m.target.clone());
        }
        keys.extend(c.host.tmpfs.keys().cloned());
        // Volumes by name (also anonymous ones) and destination, as Docker.
        for m in &c.volumes {
            keys.push(m.name.clone());
            keys.push(m.destination.clone());
        }
        if !vols.iter().any(|v| keys.contains(v)) {
            return false;
        }
    }
    if let Some(ids) = &p.images
        && !ids.contains(&c.image_id)
    {
        return false;
    }
    if let Some(nets) = f.get("network")
        && !nets.iter().any(|n| {
            c.networks.keys().any(|id| {
                id.starts_with(n.as_str())
                    || st.networks.get(id).is_some_and(|net| {
                        // The predefined host and null networks are named `host`
                        // and `none`, as `--network` says them.
                        net.name == *n
                    })
            })
        })
    {
        return false;
    }
    if !p.publish.is_empty() || !p.expose.is_empty() {
        let published = c
            .state
            .ports
            .iter()
            .any(|x| p.publish.contains(&format!("{}/{}", x.host_port, x.proto)));
        let exposed = c.exposed_ports.iter().any(|x| p.expose.contains(x))
            || c.state.ports.iter().any(|x| {
                p.expose
                    .contains(&format!("{}/{}", x.container_port, x.proto))
            });
        if !published && !exposed {
            return false;
        }
    }
    true
}

impl Controller {
    /// `docker ps`: the containers that pass filters `f` (newest first), at most
    /// `limit` (with a limit, stopped containers count too, as in Docker).
    pub async fn ps(
        &self,
        all: bool,
        f: &BTreeMap<String, Values>,
        limit: Option<usize>,
    ) -> CtlResult<Vec<ContainerView>> {
        let st = self.state.lock().await;
        let mut all = all || limit.is_some_and(|l| l > 0);
        let p = plan(&st, f, &mut all)?;
        let mut list: Vec<&Container> = st.containers.values().collect();
        list.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
        let mut before = p.before.clone();
        let mut out = Vec::new();
        for c in list {
            if let Some(b) = &before {
                if *b == c.id {
                    before = None;
                }
                continue;
            }
            if p.since.as_deref() == Some(c.id.as_str()) {
                break;
            }
            if limit.is_some_and(|l| l > 0 && out.len() >= l) {
                break;
            }
            if keep(&st, c, f, &p, all) {
                out.push(self.view(&st, c));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_labels() {
        let s = port_set(
            "publish",
            &["80".into(), "53/udp".into(), "8000-8002".into()],
        )
        .unwrap_or_default();
        assert!(s.contains("80/tcp") && s.contains("53/udp") && s.contains("8001/tcp"));
        assert!(
            port_set("publish", &["1:2".into()])
                .is_err_and(|e| e.message == "filter for 'publish' should not contain ':': 1:2")
        );
        assert!(port_set("expose", &["x".into()]).is_err());
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "1".to_string());
        assert!(labels_match(&["a".into()], &l));
        assert!(labels_match(&["a=1".into()], &l));
        assert!(!labels_match(&["a=2".into()], &l));
        assert!(!labels_match(&["b".into()], &l));
    }
}
