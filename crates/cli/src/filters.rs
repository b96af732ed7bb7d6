//! `--filter k=v` parsing and docker's `filters=` query encoding
//! (URL-encoded JSON map-of-bool: `{"label":{"a=b":true}}`).

use std::collections::BTreeMap;

use anyhow::{Result, bail};

/// Filters as docker's `filters.Args`: key → set of values.
pub type Filters = BTreeMap<String, BTreeMap<String, bool>>;

/// Parses `--filter` arguments (`name=value`; value may contain `=`).
pub fn parse(args: &[String]) -> Result<Filters> {
    let mut f = Filters::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        let k = k.trim().to_lowercase();
        if k.is_empty() {
            bail!("bad format of filter (expected name=value)");
        }
        f.entry(k).or_default().insert(v.trim().to_string(), true);
    }
    Ok(f)
}

/// JSON text of the filters (keys sorted, like Go's encoder).
pub fn to_json(f: &Filters) -> String {
    serde_json::to_string(f).unwrap_or_else(|_| "{}".into())
}

/// `("filters", json)` query pair when any filter is set.
pub fn query_pair(args: &[String]) -> Result<Option<(&'static str, String)>> {
    let f = parse(args)?;
    if f.is_empty() {
        return Ok(None);
    }
    Ok(Some(("filters", to_json(&f))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn encodes_like_docker_cli() {
        let f = parse(&strs(&[
            "type=custom",
            "scope=local",
            "name=br",
            "label=a=b",
            "driver=bridge",
            "dangling=true",
        ]))
        .expect("valid filters");
        assert_eq!(
            to_json(&f),
            r#"{"dangling":{"true":true},"driver":{"bridge":true},"label":{"a=b":true},"name":{"br":true},"scope":{"local":true},"type":{"custom":true}}"#
        );
        let q = crate::client::query(&[("filters", to_json(&f))]);
        assert_eq!(
            q,
            "?filters=%7B%22dangling%22%3A%7B%22true%22%3Atrue%7D%2C%22driver%22%3A%7B%22bridge%22%3Atrue%7D%2C%22label%22%3A%7B%22a%3Db%22%3Atrue%7D%2C%22name%22%3A%7B%22br%22%3Atrue%7D%2C%22scope%22%3A%7B%22local%22%3Atrue%7D%2C%22type%22%3A%7B%22custom%22%3Atrue%7D%7D"
        );
    }

    #[test]
    fn merges_repeated_keys() {
        let f = parse(&strs(&["label=a", "label=b", "until=24h"])).expect("valid");
        assert_eq!(
            to_json(&f),
            r#"{"label":{"a":true,"b":true},"until":{"24h":true}}"#
        );
    }

    #[test]
    fn empty_and_bad() {
        assert_eq!(query_pair(&[]).expect("ok"), None);
        let e = parse(&strs(&["novalue"])).expect_err("must fail");
        assert_eq!(e.to_string(), "bad format of filter (expected name=value)");
        assert!(parse(&strs(&["=x"])).is_err());
        let f = parse(&strs(&["Name= x "])).expect("ok");
        assert_eq!(to_json(&f), r#"{"name":{"x":true}}"#);
    }
}
