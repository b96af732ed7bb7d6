//! Output formatting: a small Go-template subset, docker-style tables,
//! JSON output, and human-readable times and sizes.
//!
//! # Template subset
//!
//! `--format` accepts text with `{{ … }}` actions; `\t` and `\n` escapes
//! are turned into tab/newline (as the docker CLI does). Supported actions:
//!
//! - `{{.}}` – the whole object; `{{.Field}}`, `{{.A.B.C}}` – a (nested) field;
//! - `{{json .Field}}` / `{{json .}}` – compact JSON of the value;
//! - `{{upper .F}}`, `{{lower .F}}`, `{{title .F}}`, `{{len .F}}`;
//! - `{{join .List ", "}}` – join a list with a separator;
//! - `{{index .Map "key"}}` – a map entry (or list element by number);
//! - `{{.F | json}}`-style pipes into any of the one-argument functions.
//!
//! Values print like Go: strings verbatim, lists as `[a b]`, maps as
//! `map[k:v]` (sorted keys), null as `<nil>`, missing fields as `<no value>`.
//! A format starting with `table` prints a header row and aligns columns;
//! `json` prints one JSON object per line. `range`/`if` are not supported.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::{Result, anyhow, bail};
use serde_json::{Map, Value};

/// One parsed argument of an action.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Path(Vec<String>),
    Str(String),
}

/// One template action: optional function and arguments, optional pipe.
#[derive(Debug, Clone, PartialEq)]
struct Action {
    func: Option<String>,
    args: Vec<Arg>,
    pipes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action(Action),
}

/// A parsed `--format` template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

const FUNCS: &[&str] = &["json", "upper", "lower", "title", "len", "join", "index"];

fn tokenize(src: &str) -> Result<Vec<String>> {
    let mut toks = Vec::new();
    let mut chars = src.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '`' {
            chars.next();
            let mut s = String::from('"');
            let mut closed = false;
            while let Some(ch) = chars.next() {
                if ch == c {
                    closed = true;
                    break;
                }
                if ch == '\\' && c == '"' {
                    match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(o) => s.push(o),
                        None => break,
                    }
                } else {
                    s.push(ch);
                }
            }
            if !closed {
                bail!("template: unterminated quoted string");
            }
            toks.push(s);
        } else if c == '|' {
            chars.next();
            toks.push("|".into());
        } else {
            let mut s = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == '|' || ch == '"' {
                    break;
                }
                s.push(ch);
                chars.next();
            }
            toks.push(s);
        }
    }
    Ok(toks)
}

fn parse_arg(tok: &str) -> Result<Arg> {
    if let Some(s) = tok.strip_prefix('"') {
        return Ok(Arg::Str(s.to_string()));
    }
    if tok == "." {
        return Ok(Arg::Path(Vec::new()));
    }
    if let Some(rest) = tok.strip_prefix('.') {
        let fields: Vec<String> = rest.split('.').map(str::to_string).collect();
        if fields.iter().any(String::is_empty) {
            bail!("template: bad field reference {tok:?}");
        }
        return Ok(Arg::Path(fields));
    }
    if tok.parse::<i64>().is_ok() {
        return Ok(Arg::Str(tok.to_string()));
    }
    bail!(
        "template: unsupported expression {tok:?} (supported: .Field, \"string\", functions {FUNCS:?})"
    )
}

fn parse_action(inner: &str) -> Result<Action> {
    let inner = inner
        .trim()
        .trim_start_matches('-')
        .trim_end_matches('-')
        .trim();
    let toks = tokenize(inner)?;
    let mut segments: Vec<Vec<String>> = vec![Vec::new()];
    for t in toks {
        if t == "|" {
            segments.push(Vec::new());
        } else if let Some(last) = segments.last_mut() {
            last.push(t);
        }
    }
    let mut iter = segments.into_iter();
    let first = iter.next().unwrap_or_default();
    if first.is_empty() {
        bail!("template: missing value for command");
    }
    let (func, args) = if FUNCS.contains(&first[0].as_str()) {
        (Some(first[0].clone()), &first[1..])
    } else if first[0].starts_with('.') || first[0].starts_with('"') {
        (None, &first[..])
    } else {
        bail!(
            "template: function {:?} not defined (supported: {FUNCS:?})",
            first[0]
        );
    };
    let args: Vec<Arg> = args.iter().map(|a| parse_arg(a)).collect::<Result<_>>()?;
    if func.is_none() && args.len() != 1 {
        bail!("template: can't give argument to non-function {inner:?}");
    }
    let mut pipes = Vec::new();
    for seg in iter {
        if seg.len() != 1 || !FUNCS.contains(&seg[0].as_str()) {
            bail!("template: unsupported pipeline stage {:?}", seg.join(" "));
        }
        pipes.push(seg[0].clone());
    }
    Ok(Action { func, args, pipes })
}

impl Template {
    /// Parses a template; `\t`/`\n` escapes become tab/newline.
    pub fn parse(src: &str) -> Result<Self> {
        let src = src.replace("\\t", "\t").replace("\\n", "\n");
        let mut parts = Vec::new();
        let mut rest = src.as_str();
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| anyhow!("template: unclosed action"))?;
            parts.push(Part::Action(parse_action(&after[..end])?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// Renders the template against `v`.
    pub fn render(&self, v: &Value) -> Result<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Action(a) => out.push_str(&render_action(a, v)?),
            }
        }
        Ok(out)
    }
}

/// Result of evaluating an argument: a value or "no value" (missing key).
fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for f in path {
        cur = match cur {
            Value::Object(m) => m.get(f)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn eval_arg(a: &Arg, v: &Value) -> Option<Value> {
    match a {
        Arg::Path(p) => lookup(v, p).cloned(),
        Arg::Str(s) => Some(Value::String(s.clone())),
    }
}

fn apply(func: &str, args: &[Option<Value>]) -> Result<Value> {
    let one = |args: &[Option<Value>]| -> Result<Value> {
        if args.len() != 1 {
            bail!(
                "template: wrong number of args for {func}: want 1 got {}",
                args.len()
            );
        }
        Ok(args[0].clone().unwrap_or(Value::Null))
    };
    Ok(match func {
        "json" => Value::String(serde_json::to_string(&one(args)?)?),
        "upper" => Value::String(go_string(&one(args)?).to_uppercase()),
        "lower" => Value::String(go_string(&one(args)?).to_lowercase()),
        "title" => {
            let s = go_string(&one(args)?);
            let mut t = String::new();
            let mut start = true;
            for c in s.chars() {
                if start {
                    t.extend(c.to_uppercase());
                } else {
                    t.push(c);
                }
                start = c.is_whitespace();
            }
            Value::String(t)
        }
        "len" => Value::from(match one(args)? {
            Value::Array(a) => a.len(),
            Value::Object(m) => m.len(),
            Value::String(s) => s.len(),
            Value::Null => 0,
            other => bail!("template: len of {other}"),
        }),
        "join" => {
            if args.len() != 2 {
                bail!(
                    "template: wrong number of args for join: want 2 got {}",
                    args.len()
                );
            }
            let sep = args[1].as_ref().map(go_string).unwrap_or_default();
            match &args[0] {
                Some(Value::Array(items)) => {
                    Value::String(items.iter().map(go_string).collect::<Vec<_>>().join(&sep))
                }
                Some(Value::Null) | None => Value::String(String::new()),
                Some(other) => Value::String(go_string(other)),
            }
        }
        "index" => {
            if args.len() != 2 {
                bail!(
                    "template: wrong number of args for index: want 2 got {}",
                    args.len()
                );
            }
            let key = args[1].as_ref().map(go_string).unwrap_or_default();
            match &args[0] {
                Some(Value::Object(m)) => m.get(&key).cloned().unwrap_or(Value::Null),
                Some(Value::Array(a)) => {
                    let i: usize = key
                        .parse()
                        .map_err(|_| anyhow!("template: index: bad index {key:?}"))?;
                    a.get(i)
                        .cloned()
                        .ok_or_else(|| anyhow!("template: index out of range: {i}"))?
                }
                _ => Value::Null,
            }
        }
        other => bail!("template: function {other:?} not defined"),
    })
}

fn render_action(a: &Action, v: &Value) -> Result<String> {
    let args: Vec<Option<Value>> = a.args.iter().map(|x| eval_arg(x, v)).collect();
    let mut val: Option<Value> = match &a.func {
        Some(f) => Some(apply(f, &args)?),
        None => args.into_iter().next().flatten(),
    };
    for p in &a.pipes {
        val = Some(apply(p, &[val])?);
    }
    Ok(match val {
        None => "<no value>".to_string(),
        Some(v) => go_string(&v),
    })
}

/// Formats a JSON value the way Go's `fmt` prints the decoded value.
pub fn go_string(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", m.get(k).map(go_string).unwrap_or_default()))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// Aligns tab-separated lines like Go's tabwriter (minwidth 10, padding 3).
pub fn tabwrite(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    for r in &rows {
        // The last cell of a line is not part of a column.
        for (i, c) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                let w = (widths[i] + 3).max(10);
                let pad = w.saturating_sub(c.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// How a list command should print its rows.
#[derive(Debug, Clone)]
pub enum ListFormat {
    /// Header row + aligned columns from a template.
    Table(Template),
    /// One JSON object per line.
    Json,
    /// One rendered template per row.
    Raw(Template),
}

impl ListFormat {
    /// Interprets a `--format` value; `default_table` is the template used
    /// for an empty format or the bare word `table`.
    pub fn parse(format: Option<&str>, default_table: &str) -> Result<Self> {
        let f = format.unwrap_or("").trim();
        if f.is_empty() || f == "table" {
            return Ok(Self::Table(Template::parse(default_table)?));
        }
        if f == "json" {
            return Ok(Self::Json);
        }
        if let Some(rest) = f.strip_prefix("table")
            && rest.starts_with(char::is_whitespace)
        {
            return Ok(Self::Table(Template::parse(rest.trim())?));
        }
        Ok(Self::Raw(Template::parse(f)?))
    }
}

/// Prints rows (objects of display fields) in `format`; `headers` maps
/// field names to column titles.
pub fn print_list(
    format: &ListFormat,
    rows: &[Map<String, Value>],
    headers: &[(&str, &str)],
) -> Result<()> {
    let mut out = String::new();
    match format {
        ListFormat::Json => {
            for r in rows {
                let mut sorted: Vec<(&String, &Value)> = r.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(b.0));
                let obj: Map<String, Value> = sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let _ = writeln!(out, "{}", Value::Object(obj));
            }
        }
        ListFormat::Raw(t) => {
            for r in rows {
                let _ = writeln!(out, "{}", t.render(&Value::Object(r.clone()))?);
            }
        }
        ListFormat::Table(t) => {
            let mut head = Map::new();
            for (k, h) in headers {
                head.insert((*k).to_string(), Value::String((*h).to_string()));
            }
            if let Some(first) = rows.first() {
                for k in first.keys() {
                    if !head.contains_key(k) {
                        head.insert(k.clone(), Value::String(k.to_uppercase()));
                    }
                }
            }
            let mut lines = vec![t.render(&Value::Object(head))?];
            for r in rows {
                lines.push(t.render(&Value::Object(r.clone()))?);
            }
            // A rendered row may contain newlines; split so columns align.
            let lines: Vec<String> = lines
                .iter()
                .flat_map(|l| l.split('\n').map(str::to_string).collect::<Vec<_>>())
                .collect();
            out = tabwrite(&lines);
        }
    }
    print_out(&out);
    Ok(())
}

/// Writes to stdout, ignoring a closed pipe.
pub fn print_out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

/// Prints a line to stdout, ignoring a closed pipe.
pub fn outln(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{s}");
}

/// Pretty-prints JSON values as docker's inspect does (4-space indent).
pub fn indent_json(v: &Value) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if v.serialize(&mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Prints inspect results: JSON array, or one template rendering per item.
pub fn print_inspect(items: &[Value], format: Option<&str>) -> Result<()> {
    match format.filter(|f| !f.is_empty()) {
        None => {
            outln(&indent_json(&Value::Array(items.to_vec())));
        }
        Some("json") => {
            outln(&serde_json::to_string(&Value::Array(items.to_vec()))?);
        }
        Some(f) => {
            let t = Template::parse(f)?;
            for it in items {
                outln(&t.render(it)?);
            }
        }
    }
    Ok(())
}

/// Go-units `HumanDuration` (e.g. "2 minutes", "About an hour").
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 1 {
        return "Less than a second".into();
    }
    if s == 1 {
        return "1 second".into();
    }
    if s < 60 {
        return format!("{s} seconds");
    }
    let m = s / 60;
    if m == 1 {
        return "About a minute".into();
    }
    if m < 60 {
        return format!("{m} minutes");
    }
    let h = ((s as f64) / 3600.0 + 0.5) as i64;
    if h == 1 {
        return "About an hour".into();
    }
    if h < 48 {
        return format!("{h} hours");
    }
    if h < 24 * 7 * 2 {
        return format!("{} days", h / 24);
    }
    if h < 24 * 30 * 2 {
        return format!("{} weeks", h / 24 / 7);
    }
    if h < 24 * 365 * 2 {
        return format!("{} months", h / 24 / 30);
    }
    format!("{} years", s / 3600 / 24 / 365)
}

/// Current unix time in seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// "N units ago" for a unix timestamp.
pub fn ago(unix: i64) -> String {
    format!("{} ago", human_duration(now_unix() - unix))
}

/// Go-units `HumanSizeWithPrecision(size, 3)`: decimal units ("7.8MB").
pub fn human_size(size: f64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1000.0 && i < UNITS.len() - 1 {
        s /= 1000.0;
        i += 1;
    }
    format!("{}{}", fmt_g3(s), UNITS[i])
}

/// Go's `%.3g` for values below 1000.
fn fmt_g3(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits_before = if v.abs() >= 1.0 {
        (v.abs().log10().floor() as i32) + 1
    } else {
        0
    };
    let decimals = (3 - digits_before).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Days since 1970-01-01 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Go's `time.Time.String()` in UTC for a unix timestamp.
pub fn go_time_unix(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let rem = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Go's `time.Time.String()` for an RFC 3339 timestamp string.
pub fn go_time_rfc3339(s: &str) -> String {
    if s.is_empty() {
        return "0001-01-01 00:00:00 +0000 UTC".into();
    }
    let Some((date, time)) = s.split_once('T') else {
        return s.to_string();
    };
    let (clock, zone) = if let Some(c) = time.strip_suffix('Z') {
        (c, "+0000 UTC".to_string())
    } else if let Some(idx) = time.rfind(['+', '-']) {
        let z = time[idx..].replace(':', "");
        (&time[..idx], format!("{z} {z}"))
    } else {
        (time, "+0000 UTC".to_string())
    };
    let clock = match clock.split_once('.') {
        Some((hms, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                hms.to_string()
            } else {
                format!("{hms}.{frac}")
            }
        }
        None => clock.to_string(),
    };
    format!("{date} {clock} {zone}")
}

/// Shortens a hex id (stripping `sha256:`) to 12 characters unless `no_trunc`.
pub fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        return id.to_string();
    }
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.chars().take(12).collect()
}

/// Docker's `Ellipsis`: truncates to `max` chars ending with `…`.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// Reads a yes/no answer from stdin after printing `msg`.
pub fn confirm(msg: &str) -> bool {
    print_out(&format!("{msg} [y/N] "));
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes" | "Yes" | "YES")
}

/// Renders a labels map as `k=v,k2=v2` (sorted).
pub fn labels_string(v: Option<&Value>) -> String {
    let Some(Value::Object(m)) = v else {
        return String::new();
    };
    let mut items: Vec<String> = m
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            )
        })
        .collect();
    items.sort();
    items.join(",")
}

/// String field of a JSON object ("" when absent).
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, v: &Value) -> String {
        match Template::parse(t).and_then(|t| t.render(v)) {
            Ok(s) => s,
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn template_fields_and_json() {
        let v = json!({"Name":"n1","Id":"abc","IPAM":{"Driver":"default","Config":[{"Subnet":"10.0.0.0/24"}]},
            "Containers":{"c1":{"Name":"x"}},"Labels":{"b":"2","a":"1"},"Internal":false,"N":3,"Nil":null});
        assert_eq!(render("{{.Name}}", &v), "n1");
        assert_eq!(render("{{ .Id }} {{.Name}}", &v), "abc n1");
        assert_eq!(render("{{.IPAM.Driver}}", &v), "default");
        assert_eq!(
            render("{{json .IPAM.Config}}", &v),
            r#"[{"Subnet":"10.0.0.0/24"}]"#
        );
        assert_eq!(render("{{json .Containers}}", &v), r#"{"c1":{"Name":"x"}}"#);
        assert_eq!(render("{{json .Missing}}", &v), "null");
        assert_eq!(render("{{.Missing}}", &v), "<no value>");
        assert_eq!(render("{{.Nil}}", &v), "<nil>");
        assert_eq!(render("{{.Labels}}", &v), "map[a:1 b:2]");
        assert_eq!(render("{{.IPAM.Config}}", &v), "[map[Subnet:10.0.0.0/24]]");
        assert_eq!(render("{{.Internal}}/{{.N}}", &v), "false/3");
        assert_eq!(render("{{index .Labels \"a\"}}", &v), "1");
        assert_eq!(render("{{upper .Name}}", &v), "N1");
        assert_eq!(render("{{.Name | upper}}", &v), "N1");
        assert_eq!(render("{{len .Containers}}", &v), "1");
        assert_eq!(render(r"{{.Name}}\t{{.Id}}", &v), "n1\tabc");
        assert_eq!(render("plain", &v), "plain");
        assert_eq!(render("{{json .}}", &json!({"a":1})), r#"{"a":1}"#);
    }

    #[test]
    fn template_join_and_errors() {
        let v = json!({"L":["a","b"]});
        assert_eq!(render("{{join .L \",\"}}", &v), "a,b");
        assert!(render("{{.Name", &v).starts_with("ERR"));
        assert!(render("{{range .L}}", &v).starts_with("ERR"));
        assert!(render("{{.}}{{}}", &v).starts_with("ERR"));
        assert!(render("{{.A..B}}", &v).starts_with("ERR"));
    }

    #[test]
    fn list_format_selection() {
        assert!(matches!(
            ListFormat::parse(None, "{{.ID}}"),
            Ok(ListFormat::Table(_))
        ));
        assert!(matches!(
            ListFormat::parse(Some("table"), "{{.ID}}"),
            Ok(ListFormat::Table(_))
        ));
        assert!(matches!(
            ListFormat::parse(Some("json"), "{{.ID}}"),
            Ok(ListFormat::Json)
        ));
        assert!(matches!(
            ListFormat::parse(Some("table {{.Name}}"), "x"),
            Ok(ListFormat::Table(_))
        ));
        assert!(matches!(
            ListFormat::parse(Some("{{.Name}}"), "x"),
            Ok(ListFormat::Raw(_))
        ));
    }

    #[test]
    fn tabwriter_alignment() {
        let lines = vec![
            "NETWORK ID\tNAME\tDRIVER".to_string(),
            "abc\tbridge\tbridge".to_string(),
        ];
        assert_eq!(
            tabwrite(&lines),
            "NETWORK ID   NAME      DRIVER\nabc          bridge    bridge\n"
        );
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(45), "45 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(3 * 3600), "3 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(21 * 86400), "3 weeks");
        assert_eq!(human_duration(90 * 86400), "3 months");
        assert_eq!(human_duration(3 * 365 * 86400), "3 years");
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(512.0), "512B");
        assert_eq!(human_size(7_800_000.0), "7.8MB");
        assert_eq!(human_size(1_234.0), "1.23kB");
        assert_eq!(human_size(12_345_678.0), "12.3MB");
    }

    #[test]
    fn times() {
        assert_eq!(go_time_unix(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(go_time_unix(1_735_689_600), "2025-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            go_time_rfc3339("2016-10-19T04:33:30.360899459Z"),
            "2016-10-19 04:33:30.360899459 +0000 UTC"
        );
        assert_eq!(
            go_time_rfc3339("2025-01-01T00:00:00Z"),
            "2025-01-01 00:00:00 +0000 UTC"
        );
        assert_eq!(go_time_rfc3339(""), "0001-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn ids_and_ellipsis() {
        assert_eq!(short_id("sha256:0123456789abcdef", false), "0123456789ab");
        assert_eq!(short_id("0123456789abcdef", true), "0123456789abcdef");
        assert_eq!(ellipsis("sleep 1d", 20), "sleep 1d");
        assert_eq!(
            ellipsis("abcdefghijklmnopqrstuvwxyz", 20),
            "abcdefghijklmnopqrs…"
        );
        assert_eq!(labels_string(Some(&json!({"b":"2","a":"1"}))), "a=1,b=2");
    }
}
