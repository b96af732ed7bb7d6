//! Lenient JSON and query decoding with Docker's rules: unknown fields are ignored,
//! `null` means "not given", wrong types are a 400 naming the field.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::CtlError;

/// Parses a request body; an empty body is `{}`.
pub fn json(bytes: &[u8]) -> Result<Value, CtlError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Value::Object(Default::default()));
    }
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| CtlError::invalid(format!("invalid JSON in request body: {e}")))?;
    if !v.is_object() {
        return Err(CtlError::invalid(
            "invalid request body: expected a JSON object",
        ));
    }
    Ok(v)
}

fn wrong(field: &str, want: &str) -> CtlError {
    CtlError::invalid(format!(
        "invalid request body: field {field} must be {want}"
    ))
}

/// A string field (`null`/absent → "").
pub fn string(v: &Value, field: &str) -> Result<String, CtlError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(wrong(field, "a string")),
    }
}

/// A boolean field.
pub fn boolean(v: &Value, field: &str) -> Result<Option<bool>, CtlError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(wrong(field, "true or false")),
    }
}

/// A list of strings (`null` → empty). A plain string is accepted as a one-item list
/// (Docker's `StrSlice`).
pub fn strings(v: &Value, field: &str) -> Result<Vec<String>, CtlError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| wrong(field, "a list of strings"))
            })
            .collect(),
        Some(_) => Err(wrong(field, "a list of strings")),
    }
}

/// Like `strings` but distinguishes absent/null (`None`).
pub fn opt_strings(v: &Value, field: &str) -> Result<Option<Vec<String>>, CtlError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        _ => strings(v, field).map(Some),
    }
}

/// A map of strings (`null` → empty).
pub fn string_map(v: &Value, field: &str) -> Result<BTreeMap<String, String>, CtlError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, x)| match x {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(wrong(&format!("{field}.{k}"), "a string")),
            })
            .collect(),
        Some(_) => Err(wrong(field, "an object of strings")),
    }
}

/// An object field (`null`/absent → None).
pub fn object<'a>(v: &'a Value, field: &str) -> Result<Option<&'a Value>, CtlError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(o @ Value::Object(_)) => Ok(Some(o)),
        Some(_) => Err(wrong(field, "an object")),
    }
}

/// Docker's query boolean: false iff "", "0", "no", "false", "none".
pub fn qbool(q: &BTreeMap<String, String>, key: &str) -> bool {
    match q.get(key) {
        None => false,
        Some(v) => !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "no" | "false" | "none"
        ),
    }
}

/// Parses `filters=` JSON: map-of-bool (CLI) or map-of-list (docker-py).
pub fn filters(
    q: &BTreeMap<String, String>,
    allowed: &[&str],
) -> Result<BTreeMap<String, Vec<String>>, CtlError> {
    let Some(raw) = q.get("filters") else {
        return Ok(BTreeMap::new());
    };
    if raw.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let v: Value = serde_json::from_str(raw).map_err(|_| CtlError::invalid("invalid filter"))?;
    let Value::Object(m) = v else {
        return Err(CtlError::invalid("invalid filter"));
    };
    let mut out = BTreeMap::new();
    for (k, vals) in m {
        if !allowed.contains(&k.as_str()) {
            return Err(CtlError::invalid(format!("invalid filter '{k}'")));
        }
        let list: Vec<String> = match vals {
            Value::Object(o) => o
                .into_iter()
                .filter(|(_, b)| b.as_bool().unwrap_or(false))
                .map(|(s, _)| s)
                .collect(),
            Value::Array(a) => a
                .into_iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| CtlError::invalid("invalid filter"))
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(CtlError::invalid("invalid filter")),
        };
        out.insert(k, list);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("filters".to_string(), s.to_string());
        m
    }

    #[test]
    fn both_filter_encodings() {
        let a = filters(
            &q(r#"{"driver":{"bridge":true},"name":{"br":true}}"#),
            &["driver", "name"],
        )
        .ok();
        let b = filters(
            &q(r#"{"driver":["bridge"],"name":["br"]}"#),
            &["driver", "name"],
        )
        .ok();
        assert_eq!(a, b);
        assert!(a.is_some());
        assert!(filters(&q(r#"{"foo":["x"]}"#), &["name"]).is_err());
        assert!(filters(&q("nonsense"), &["name"]).is_err());
    }

    #[test]
    fn bools_and_types() {
        let mut m = BTreeMap::new();
        m.insert("force".to_string(), "True".to_string());
        m.insert("v".to_string(), "False".to_string());
        assert!(qbool(&m, "force"));
        assert!(!qbool(&m, "v"));
        let v: Value = serde_json::json!({"Name": 5, "Env": null, "Cmd": "sh"});
        assert!(string(&v, "Name").is_err());
        assert_eq!(strings(&v, "Env").ok(), Some(vec![]));
        assert_eq!(strings(&v, "Cmd").ok(), Some(vec!["sh".to_string()]));
    }
}
