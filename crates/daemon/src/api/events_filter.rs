//! The `/events` filters, with moby's matching rules (`daemon/events/filter.go`):
//! every filter given must match (AND across keys, OR among one key's values).
//!
//! - `type`, `scope`: exact;
//! - `event`: exact, or by prefix when one of the values is `health_status`,
//!   `exec_create` or `exec_start` (their actions carry a suffix, `exec_start: sh`);
//! - `container`, `network`, `volume`, `plugin`, `daemon`, `node`, `service`,
//!   `secret`, `config`: the actor's ID or its `name` attribute, by prefix;
//! - `image`: exact, on the actor's ID and on its image (a container event's `image`,
//!   an image event's `name`), each also without its tag (`busybox` for `busybox:1`);
//! - `label`: `key` or `key=value` against the actor's attributes (which hold a
//!   container's labels); all of them must match.

use std::collections::BTreeMap;

use crate::controller::Event;
use crate::error::CtlError;

/// The filters Docker's `/events` accepts (any other is refused, as Docker does).
pub const ACCEPTED: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

/// Object types Docker sends events for (`type=` values).
const TYPES: &[&str] = &[
    "builder",
    "config",
    "container",
    "daemon",
    "image",
    "network",
    "node",
    "plugin",
    "secret",
    "service",
    "volume",
];

/// Parsed `/events` filters.
pub type Filters = BTreeMap<String, Vec<String>>;

/// Checks the values of filters that have a fixed set (`type`, `scope`).
pub fn check(f: &Filters) -> Result<(), CtlError> {
    for t in f.get("type").into_iter().flatten() {
        if !TYPES.contains(&t.as_str()) {
            return Err(CtlError::invalid(format!("invalid filter 'type={t}'")));
        }
    }
    for s in f.get("scope").into_iter().flatten() {
        if !matches!(s.as_str(), "local" | "swarm") {
            return Err(CtlError::invalid(format!("invalid filter 'scope={s}'")));
        }
    }
    Ok(())
}

/// moby's `ExactMatch`: no values for `key`, or one equal to `source`.
fn exact(f: &Filters, key: &str, source: &str) -> bool {
    f.get(key).is_none_or(|l| l.iter().any(|x| x == source))
}

/// moby's `FuzzyMatch`: exact, or a value that prefixes `source`.
fn fuzzy(f: &Filters, key: &str, source: &str) -> bool {
    f.get(key)
        .is_none_or(|l| l.iter().any(|x| source.starts_with(x.as_str())))
}

/// moby's `fuzzyMatchName`: the actor's ID or its `name` attribute.
fn by_name(f: &Filters, key: &str, ev: &Event) -> bool {
    let name = ev.attributes.get("name").map_or("", String::as_str);
    fuzzy(f, key, &ev.id) || fuzzy(f, key, name)
}

/// moby's `MatchKVList`: every `key` / `key=value` holds in `attrs`.
fn labels(f: &Filters, attrs: &BTreeMap<String, String>) -> bool {
    let Some(want) = f.get("label").filter(|l| !l.is_empty()) else {
        return true;
    };
    want.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => attrs.get(k).is_some_and(|x| x == v),
        None => attrs.contains_key(w.as_str()),
    })
}

/// An image reference as Docker's familiar name without tag or digest
/// (`docker.io/library/busybox:1` → `busybox`); other text is returned as it is.
fn strip_tag(image: &str) -> &str {
    let no_digest = image.split_once('@').map_or(image, |(n, _)| n);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    let name = match last.rfind(':') {
        Some(i) => &no_digest[..no_digest.len() - (last.len() - i)],
        None => no_digest,
    };
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
}

/// moby's `matchImage`.
fn image(f: &Filters, ev: &Event) -> bool {
    if !f.contains_key("image") {
        return true;
    }
    let attr = if ev.kind == "image" { "name" } else { "image" };
    let name = ev.attributes.get(attr).map_or("", String::as_str);
    [ev.id.as_str(), name, strip_tag(&ev.id), strip_tag(name)]
        .iter()
        .any(|s| exact(f, "image", s))
}

/// moby's `matchEvent`.
fn event(f: &Filters, action: &str) -> bool {
    let prefixed = f.get("event").is_some_and(|l| {
        l.iter()
            .any(|v| matches!(v.as_str(), "health_status" | "exec_create" | "exec_start"))
    });
    if prefixed {
        fuzzy(f, "event", action)
    } else {
        exact(f, "event", action)
    }
}

/// Whether `ev` passes the filters `f` (moby's `Filter.Include`).
pub fn matches(f: &Filters, ev: &Event) -> bool {
    event(f, ev.action)
        && exact(f, "type", ev.kind)
        && exact(f, "scope", "local")
        && [
            "daemon",
            "container",
            "plugin",
            "volume",
            "network",
            "node",
            "service",
            "secret",
            "config",
        ]
        .iter()
        .all(|k| by_name(f, k, ev))
        && image(f, ev)
        && labels(f, &ev.attributes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn ev(kind: &'static str, action: &'static str, id: &str, attrs: &[(&str, &str)]) -> Event {
        Event {
            kind,
            action,
            id: id.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            time: SystemTime::now(),
        }
    }

    fn f(pairs: &[(&str, &str)]) -> Filters {
        let mut m: Filters = BTreeMap::new();
        for (k, v) in pairs {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        m
    }

    #[test]
    fn names_ids_types_and_events() {
        let e = ev("network", "connect", "abcdef0123", &[("name", "web")]);
        assert!(matches(&f(&[]), &e));
        assert!(matches(
            &f(&[("type", "network"), ("event", "connect")]),
            &e
        ));
        assert!(!matches(&f(&[("type", "container")]), &e));
        assert!(!matches(&f(&[("event", "conn")]), &e));
        assert!(matches(&f(&[("network", "abc")]), &e));
        assert!(matches(&f(&[("network", "we")]), &e));
        assert!(!matches(&f(&[("network", "other")]), &e));
        assert!(matches(&f(&[("network", "other"), ("network", "web")]), &e));
        assert!(!matches(&f(&[("container", "zzz")]), &e));
        assert!(matches(&f(&[("scope", "local")]), &e));
        assert!(!matches(&f(&[("scope", "swarm")]), &e));
        let v = ev("volume", "create", "data", &[("driver", "local")]);
        assert!(matches(&f(&[("volume", "da")]), &v));
        assert!(!matches(&f(&[("volume", "x")]), &v));
        for k in ["daemon", "plugin", "node", "service", "secret", "config"] {
            assert!(!matches(&f(&[(k, "nope")]), &v), "{k}");
        }
        let x = ev("container", "exec_start: sh -c true", "c1", &[]);
        assert!(matches(&f(&[("event", "exec_start")]), &x));
        assert!(!matches(&f(&[("event", "exec_die")]), &x));
    }

    #[test]
    fn labels_all_must_match() {
        let e = ev(
            "container",
            "start",
            "c1",
            &[
                ("name", "p_web_1"),
                ("image", "busybox"),
                ("com.docker.compose.project", "p"),
                ("tier", "front"),
            ],
        );
        assert!(matches(
            &f(&[("label", "com.docker.compose.project=p")]),
            &e
        ));
        assert!(matches(&f(&[("label", "tier")]), &e));
        assert!(matches(
            &f(&[("label", "tier"), ("label", "com.docker.compose.project=p")]),
            &e
        ));
        assert!(!matches(
            &f(&[("label", "tier"), ("label", "com.docker.compose.project=q")]),
            &e
        ));
        assert!(!matches(&f(&[("label", "missing")]), &e));
        assert!(!matches(&f(&[("label", "tier=back")]), &e));
    }

    #[test]
    fn images_exact_with_or_without_tag() {
        let c = ev("container", "start", "c1", &[("image", "busybox:1.36")]);
        assert!(matches(&f(&[("image", "busybox")]), &c));
        assert!(matches(&f(&[("image", "busybox:1.36")]), &c));
        assert!(!matches(&f(&[("image", "busy")]), &c));
        let i = ev(
            "image",
            "pull",
            "sha256:ab",
            &[("name", "docker.io/library/alpine:3")],
        );
        assert!(matches(&f(&[("image", "alpine")]), &i));
        assert!(matches(&f(&[("image", "sha256:ab")]), &i));
        assert_eq!(
            strip_tag("127.0.0.1:5000/team/app:1.2"),
            "127.0.0.1:5000/team/app"
        );
        assert_eq!(strip_tag("127.0.0.1:5000/app"), "127.0.0.1:5000/app");
        assert_eq!(strip_tag("app@sha256:00"), "app");
    }

    #[test]
    fn fixed_values_checked() {
        assert!(check(&f(&[("type", "volume"), ("scope", "local")])).is_ok());
        assert!(
            check(&f(&[("type", "bogus")]))
                .is_err_and(|e| e.message == "invalid filter 'type=bogus'")
        );
        assert!(check(&f(&[("scope", "x")])).is_err());
    }
}
