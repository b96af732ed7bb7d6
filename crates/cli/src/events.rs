//! `events`: the daemon's event stream (`GET /events`), printed as docker does:
//! `<time RFC 3339, 9 digits> <Type> <Action> <Actor.ID> (<k=v, sorted>)`, or one
//! JSON object per line with `--format json`, or a Go template per event.
//!
//! `--since`/`--until` take what `docker events` takes: Unix seconds (with an
//! optional fraction), an RFC 3339 time (`2026-11-28T00:30:00Z`, `…+01:00`, a bare
//! date; without a zone, local time) or a duration back from now (`10m`, `1h30m`).
//! Event times print in local time, like docker (`Z` when the zone is UTC).

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};
use clap::Args;
use serde_json::{Map, Value, json};

use crate::client::{Client, query};
use crate::filters;
use crate::format::Template;

/// Arguments of `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Show all events created since timestamp (RFC 3339, Unix seconds or a duration like 10m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Stream events until this timestamp (RFC 3339, Unix seconds or a duration like 10m)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Filter output based on conditions provided (type=, event=, container=, network=, image=)
    #[arg(short = 'f', long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Format output using a Go template ('{{.Type}} {{.Action}}') or "json"
    #[arg(long)]
    pub format: Option<String>,
}

/// The error for a `--since`/`--until` value that is none of the accepted forms.
fn bad_time(flag: &str, raw: &str) -> anyhow::Error {
    anyhow!(
        "invalid value for --{flag}: {raw:?}: give an RFC 3339 time (2026-11-28T00:30:00Z), Unix seconds (1764289800.5) or a duration back from now (10m, 1h30m)"
    )
}

/// Splits a trailing `+HH:MM`/`-HH:MM` zone offset off an RFC 3339 time; returns
/// the rest and the offset in seconds east of UTC.
fn split_offset(raw: &str) -> Option<(&str, i64)> {
    let b = raw.as_bytes();
    let n = b.len();
    if n < 6 || !raw.contains('T') && !raw.contains(' ') {
        return None;
    }
    let (sign, hh, colon, mm) = (b[n - 6], &raw[n - 5..n - 3], b[n - 3], &raw[n - 2..]);
    if !matches!(sign, b'+' | b'-') || colon != b':' {
        return None;
    }
    let h: i64 = hh.parse().ok()?;
    let m: i64 = mm.parse().ok()?;
    let secs = (h * 60 + m) * 60;
    Some((&raw[..n - 6], if sign == b'-' { -secs } else { secs }))
}

/// Parses a time as `docker events --since/--until` does and returns it as the
/// API expects it: `<seconds>.<nanoseconds>`.
pub fn parse_time(raw: &str, now: SystemTime, flag: &str) -> Result<String> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(bad_time(flag, raw));
    }
    // Unix seconds, with an optional fraction of up to 9 digits.
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    if !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 9
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        let s: u64 = secs.parse().map_err(|_| bad_time(flag, raw))?;
        return Ok(format!("{s}.{frac:0<9}"));
    }
    let t = if let Ok(d) = humantime::parse_duration(v) {
        now.checked_sub(d).unwrap_or(UNIX_EPOCH)
    } else if v.contains('-') {
        let (body, offset) = match split_offset(v) {
            Some(split) => split,
            None if v.ends_with(['Z', 'z']) => (&v[..v.len() - 1], 0),
            // No zone: the local one, as docker does.
            None => (v, local_offset(now)),
        };
        // A bare date is midnight; `HH:MM` gets `:00` seconds.
        let body = if body.len() == 10 {
            format!("{body}T00:00:00")
        } else if body.len() == 16 {
            format!("{body}:00")
        } else {
            body.to_string()
        };
        let local = humantime::parse_rfc3339_weak(&body).map_err(|_| bad_time(flag, raw))?;
        let shift = Duration::from_secs(offset.unsigned_abs());
        let t = if offset >= 0 {
            local.checked_sub(shift)
        } else {
            local.checked_add(shift)
        };
        t.ok_or_else(|| bad_time(flag, raw))?
    } else {
        return Err(bad_time(flag, raw));
    };
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Ok(format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
}

/// An event as docker's `events.Message` marshals it (JSON tag names and order).
fn as_json(ev: &Value) -> Value {
    let mut m = Map::new();
    for k in ["status", "id", "from"] {
        if let Some(v) = ev
            .get(k)
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        {
            m.insert(k.to_string(), v.clone());
        }
    }
    for k in ["Type", "Action", "Actor", "scope", "time", "timeNano"] {
        if let Some(v) = ev.get(k) {
            m.insert(k.to_string(), v.clone());
        }
    }
    Value::Object(m)
}

/// An event with the Go field names templates use (`.Type`, `.Actor.ID`, `.Time`,
/// `.TimeNano`, `.Scope`, `.Status`, `.ID`, `.From`).
fn as_fields(ev: &Value) -> Value {
    let get = |k: &str| ev.get(k).cloned().unwrap_or(Value::Null);
    let actor = ev.get("Actor");
    json!({
        "Status": get("status"),
        "ID": get("id"),
        "From": get("from"),
        "Type": get("Type"),
        "Action": get("Action"),
        "Actor": {
            "ID": actor.and_then(|a| a.get("ID")).cloned().unwrap_or(Value::Null),
            "Attributes": actor
                .and_then(|a| a.get("Attributes"))
                .cloned()
                .unwrap_or_else(|| json!({})),
        },
        "Scope": get("scope"),
        "Time": get("time"),
        "TimeNano": get("timeNano"),
    })
}

/// The local time zone's offset from UTC (seconds east) at `t`; 0 if unknown.
fn local_offset(t: SystemTime) -> i64 {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as libc::time_t)
        .unwrap_or(0);
    // SAFETY: an all-zero `tm` is a valid value (integers and a null zone pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is thread-safe.
    let r = unsafe { libc::localtime_r(&secs, &mut tm) };
    if r.is_null() { 0 } else { tm.tm_gmtoff }
}

/// `t` as Go's RFC3339NanoFixed in a zone `offset` seconds east of UTC:
/// `2026-11-28T01:30:00.123456789+01:00`, or `…Z` for UTC.
pub fn format_time(t: SystemTime, offset: i64) -> String {
    let shift = Duration::from_secs(offset.unsigned_abs());
    let local = if offset >= 0 {
        t.checked_add(shift)
    } else {
        t.checked_sub(shift)
    }
    .unwrap_or(t);
    let text = humantime::format_rfc3339_nanos(local).to_string();
    if offset == 0 {
        return text;
    }
    let (sign, abs) = (if offset < 0 { '-' } else { '+' }, offset.unsigned_abs());
    format!(
        "{}{sign}{:02}:{:02}",
        text.trim_end_matches('Z'),
        abs / 3600,
        abs % 3600 / 60
    )
}

/// Docker's default line: `<time> <Type> <Action> <Actor.ID> (<k=v, …>)`, the
/// time in the local zone.
pub fn pretty(ev: &Value) -> String {
    pretty_in(ev, None)
}

/// [`pretty`] with the time in a zone `offset` seconds east of UTC (`None`: local).
fn pretty_in(ev: &Value, offset: Option<i64>) -> String {
    let num = |k: &str| ev.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut out = String::new();
    let when = match (num("timeNano"), num("time")) {
        (0, 0) => None,
        (0, s) => Some(UNIX_EPOCH + Duration::from_secs(s)),
        (n, _) => Some(UNIX_EPOCH + Duration::from_nanos(n)),
    };
    if let Some(t) = when {
        out.push_str(&format_time(t, offset.unwrap_or_else(|| local_offset(t))));
        out.push(' ');
    }
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let actor = ev.get("Actor");
    out.push_str(&format!(
        "{} {} {}",
        text(ev.get("Type")),
        text(ev.get("Action")),
        text(actor.and_then(|a| a.get("ID")))
    ));
    if let Some(Value::Object(attrs)) = actor.and_then(|a| a.get("Attributes"))
        && !attrs.is_empty()
    {
        let mut kv: Vec<(&String, String)> = attrs
            .iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect();
        kv.sort_by(|a, b| a.0.cmp(b.0));
        let parts: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(" ({})", parts.join(", ")));
    }
    out
}

/// How each event is printed.
enum Output {
    Pretty,
    Json,
    Template(Template),
}

impl Output {
    fn parse(format: Option<&str>) -> Result<Self> {
        Ok(match format.map(str::trim) {
            None | Some("") => Self::Pretty,
            Some("json" | "{{json .}}" | "{{ json . }}") => Self::Json,
            Some(t) => Self::Template(Template::parse(t)?),
        })
    }

    fn line(&self, ev: &Value) -> Result<String> {
        Ok(match self {
            Self::Pretty => pretty(ev),
            Self::Json => as_json(ev).to_string(),
            Self::Template(t) => t.render(&as_fields(ev))?,
        })
    }
}

/// `events`: streams `/events` until it ends (`--until`) or the user interrupts.
pub async fn events(client: &Client, a: EventsArgs) -> Result<i32> {
    let out = Output::parse(a.format.as_deref())?;
    let now = SystemTime::now();
    let mut q = Vec::new();
    if let Some(s) = &a.since {
        q.push(("since", parse_time(s, now, "since")?));
    }
    if let Some(u) = &a.until {
        q.push(("until", parse_time(u, now, "until")?));
    }
    if let Some(pair) = filters::query_pair(&a.filter)? {
        q.push(pair);
    }
    let mut resp = client
        .send(
            hyper::Method::GET,
            &format!("/events{}", query(&q)),
            None,
            &[],
        )
        .await?;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.next_chunk().await? {
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let ev: Value = serde_json::from_str(line)
                .map_err(|e| anyhow!("unexpected event from daemon ({e}): {line}"))?;
            let text = format!("{}\n", out.line(&ev)?);
            let mut o = std::io::stdout().lock();
            if o.write_all(text.as_bytes())
                .and_then(|()| o.flush())
                .is_err()
            {
                // The reader went away (`netloom events | head -1`): stop, as docker does.
                return Ok(0);
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn times_like_docker() {
        let now = at(1_795_825_800);
        let p = |v: &str| parse_time(v, now, "since");
        assert_eq!(p("1700000000").expect("unix"), "1700000000.000000000");
        assert_eq!(p("1700000000.5").expect("frac"), "1700000000.500000000");
        assert_eq!(p("10m").expect("dur"), "1795825200.000000000");
        assert_eq!(p("1h30m").expect("dur"), "1795820400.000000000");
        assert_eq!(
            p("2026-11-28T00:30:00Z").expect("rfc3339"),
            "1795825800.000000000"
        );
        assert_eq!(
            p("2026-11-28T00:30:00.123456789Z").expect("nanos"),
            "1795825800.123456789"
        );
        assert_eq!(
            p("2026-11-28T01:30:00+01:00").expect("offset"),
            "1795825800.000000000"
        );
        assert_eq!(
            p("2026-11-27T23:30:00-01:00").expect("offset"),
            "1795825800.000000000"
        );
        // Without a zone: local time.
        let local = |utc: i64| format!("{}.000000000", utc - local_offset(now));
        assert_eq!(p("2026-11-28").expect("date"), local(1_795_824_000));
        assert_eq!(
            p("2026-11-28T00:30").expect("no secs"),
            local(1_795_825_800)
        );
        assert_eq!(p("2026-11-28z").expect("date, UTC"), "1795824000.000000000");
        for bad in ["", "yesterday", "10x", "2026-13-45", "1.2.3", "-5", "12:00"] {
            let e = p(bad).expect_err(bad);
            assert!(
                e.to_string().starts_with("invalid value for --since"),
                "{bad}: {e}"
            );
        }
    }

    fn sample() -> Value {
        serde_json::from_str(
            r#"{"Type":"network","Action":"connect","Actor":{"ID":"1f2e","Attributes":{"type":"bridge","name":"foo","container":"abc"}},"scope":"local","time":1795825800,"timeNano":1795825800123456789}"#,
        )
        .expect("valid json")
    }

    #[test]
    fn times_in_a_zone() {
        let t = at(1_795_825_800) + Duration::from_nanos(5);
        assert_eq!(format_time(t, 0), "2026-11-28T00:30:00.000000005Z");
        assert_eq!(format_time(t, 3600), "2026-11-28T01:30:00.000000005+01:00");
        assert_eq!(format_time(t, -9000), "2026-11-27T22:00:00.000000005-02:30");
    }

    #[test]
    fn local_offset_agrees_with_date() {
        let Ok(o) = std::process::Command::new("date").arg("+%z").output() else {
            return;
        };
        let z = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let (sign, hhmm) = z.split_at(1);
        let (Ok(h), Ok(m)) = (hhmm[..2].parse::<i64>(), hhmm[2..].parse::<i64>()) else {
            panic!("date +%z: {z:?}");
        };
        let want = if sign == "-" { -1 } else { 1 } * (h * 3600 + m * 60);
        assert_eq!(local_offset(SystemTime::now()), want, "date +%z = {z}");
    }

    #[test]
    fn default_line_matches_docker() {
        assert_eq!(
            pretty_in(&sample(), Some(0)),
            "2026-11-28T00:30:00.123456789Z network connect 1f2e (container=abc, name=foo, type=bridge)"
        );
        let bare = json!({"Type":"container","Action":"die","Actor":{"ID":"c1","Attributes":{}},"time":1795825800});
        assert_eq!(
            pretty_in(&bare, Some(0)),
            "2026-11-28T00:30:00.000000000Z container die c1"
        );
    }

    #[test]
    fn formats() {
        let ev = sample();
        let t = Output::parse(Some("{{.Type}} {{.Action}} {{.Actor.ID}} {{.Time}} {{.TimeNano}} {{.Scope}} {{index .Actor.Attributes \"name\"}}"))
            .expect("template");
        assert_eq!(
            t.line(&ev).expect("render"),
            "network connect 1f2e 1795825800 1795825800123456789 local foo"
        );
        let j = Output::parse(Some("json")).expect("json");
        let line = j.line(&ev).expect("json line");
        assert!(
            line.starts_with(r#"{"Type":"network","Action":"connect","Actor":{"ID":"1f2e""#),
            "{line}"
        );
        assert!(
            line.ends_with(r#""scope":"local","time":1795825800,"timeNano":1795825800123456789}"#),
            "{line}"
        );
        let c = json!({"Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{}},"scope":"local","time":1,"timeNano":1,"status":"start","id":"c1","from":"busybox"});
        let line = Output::parse(Some("{{json .}}"))
            .expect("json")
            .line(&c)
            .expect("line");
        assert!(
            line.starts_with(r#"{"status":"start","id":"c1","from":"busybox","Type":"container""#),
            "{line}"
        );
        assert!(Output::parse(Some("{{.Type")).is_err());
    }
}
