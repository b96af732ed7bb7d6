//! `version` and `info`.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use crate::client::{API_VERSION, Client};
use crate::format::{Template, outln, s};

/// Arguments of `version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Format output using a template ('{{.Server.Version}}') or "json"
    #[arg(short, long)]
    pub format: Option<String>,
}

/// Arguments of `info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Format output using a template ('{{.ServerVersion}}') or "json"
    #[arg(short, long)]
    pub format: Option<String>,
}

fn os_arch() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

fn client_info() -> Value {
    json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": API_VERSION,
        "Os": std::env::consts::OS,
        "Arch": os_arch().split('/').nth(1).unwrap_or_default(),
        "Context": "default",
    })
}

fn field(out: &mut Vec<String>, indent: &str, label: &str, v: &str, width: usize) {
    if !v.is_empty() {
        out.push(format!("{indent}{:<width$}{v}", format!("{label}:")));
    }
}

fn v_str(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// `netloom version`.
pub async fn version(client: &Client, a: VersionArgs) -> Result<i32> {
    let server = client.get_json::<Value>("/version").await;
    if let Some(f) = a.format.as_deref().filter(|f| !f.is_empty()) {
        let doc = json!({"Client": client_info(), "Server": server.as_ref().ok()});
        if f == "json" {
            outln(&doc.to_string());
        } else {
            outln(&Template::parse(f)?.render(&doc)?);
        }
        return server.map(|_| 0);
    }
    let mut out = vec!["Client:".to_string()];
    let w = 19;
    field(&mut out, " ", "Version", env!("CARGO_PKG_VERSION"), w);
    field(&mut out, " ", "API version", API_VERSION, w);
    field(&mut out, " ", "OS/Arch", &os_arch(), w);
    field(&mut out, " ", "Context", "default", w);
    outln(&out.join("\n"));
    let server = server?;
    let mut out = Vec::new();
    let platform = server
        .get("Platform")
        .map(|p| s(p, "Name").to_string())
        .unwrap_or_default();
    out.push(String::new());
    out.push(format!("Server: {platform}").trim_end().to_string());
    let w = 18;
    match server.get("Components").and_then(Value::as_array) {
        Some(comps) if !comps.is_empty() => {
            for c in comps {
                out.push(format!(" {}:", s(c, "Name")));
                field(&mut out, "  ", "Version", s(c, "Version"), w);
                let d = c.get("Details").cloned().unwrap_or(Value::Null);
                if !v_str(&d, "ApiVersion").is_empty() {
                    let api = format!(
                        "{} (minimum version {})",
                        v_str(&d, "ApiVersion"),
                        v_str(&d, "MinAPIVersion")
                    );
                    field(&mut out, "  ", "API version", &api, w);
                }
                for (label, key) in [
                    ("Go version", "GoVersion"),
                    ("Git commit", "GitCommit"),
                    ("Built", "BuildTime"),
                ] {
                    field(&mut out, "  ", label, &v_str(&d, key), w);
                }
                let (os, arch) = (v_str(&d, "Os"), v_str(&d, "Arch"));
                if !os.is_empty() {
                    field(&mut out, "  ", "OS/Arch", &format!("{os}/{arch}"), w);
                }
                field(
                    &mut out,
                    "  ",
                    "Experimental",
                    &v_str(&d, "Experimental"),
                    w,
                );
            }
        }
        _ => {
            out.push(" Engine:".to_string());
            field(&mut out, "  ", "Version", &v_str(&server, "Version"), w);
            let api = format!(
                "{} (minimum version {})",
                v_str(&server, "ApiVersion"),
                v_str(&server, "MinAPIVersion")
            );
            field(&mut out, "  ", "API version", &api, w);
            field(
                &mut out,
                "  ",
                "Go version",
                &v_str(&server, "GoVersion"),
                w,
            );
            field(
                &mut out,
                "  ",
                "Git commit",
                &v_str(&server, "GitCommit"),
                w,
            );
            field(&mut out, "  ", "Built", &v_str(&server, "BuildTime"), w);
            let os = v_str(&server, "Os");
            if !os.is_empty() {
                let arch = v_str(&server, "Arch");
                field(&mut out, "  ", "OS/Arch", &format!("{os}/{arch}"), w);
            }
            field(
                &mut out,
                "  ",
                "Experimental",
                &v_str(&server, "Experimental"),
                w,
            );
        }
    }
    outln(&out.join("\n"));
    Ok(0)
}

fn binary_size(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{}", UNITS[i])
}

/// `netloom info`.
pub async fn info(client: &Client, a: InfoArgs) -> Result<i32> {
    let info: Value = client.get_json("/info").await?;
    if let Some(f) = a.format.as_deref().filter(|f| !f.is_empty()) {
        if f == "json" {
            outln(&info.to_string());
        } else {
            outln(&Template::parse(f)?.render(&info)?);
        }
        return Ok(0);
    }
    let mut out = vec![
        "Client:".to_string(),
        format!(" Version:    {}", env!("CARGO_PKG_VERSION")),
        " Context:    default".to_string(),
        " Debug Mode: false".to_string(),
        String::new(),
        "Server:".to_string(),
    ];
    let n = |k: &str| v_str(&info, k);
    if !n("Containers").is_empty() {
        out.push(format!(" Containers: {}", n("Containers")));
        out.push(format!("  Running: {}", n("ContainersRunning")));
        out.push(format!("  Paused: {}", n("ContainersPaused")));
        out.push(format!("  Stopped: {}", n("ContainersStopped")));
    }
    fn line(out: &mut Vec<String>, label: &str, v: String) {
        if !v.is_empty() {
            out.push(format!(" {label}: {v}"));
        }
    }
    line(&mut out, "Images", n("Images"));
    line(&mut out, "Server Version", n("ServerVersion"));
    line(&mut out, "Storage Driver", n("Driver"));
    if let Some(nets) = info
        .get("Plugins")
        .and_then(|p| p.get("Network"))
        .and_then(Value::as_array)
    {
        let list: Vec<&str> = nets.iter().filter_map(Value::as_str).collect();
        line(&mut out, "Network", list.join(" "));
    }
    if let Some(sw) = info.get("Swarm") {
        out.extend(crate::swarm::info_lines(sw));
    }
    line(&mut out, "Kernel Version", n("KernelVersion"));
    line(&mut out, "Operating System", n("OperatingSystem"));
    line(&mut out, "OSType", n("OSType"));
    line(&mut out, "Architecture", n("Architecture"));
    line(&mut out, "CPUs", n("NCPU"));
    let mem = info
        .get("MemTotal")
        .and_then(Value::as_f64)
        .map(binary_size)
        .unwrap_or_default();
    line(&mut out, "Total Memory", mem);
    line(&mut out, "Name", n("Name"));
    line(&mut out, "ID", n("ID"));
    line(&mut out, "Docker Root Dir", n("DockerRootDir"));
    line(&mut out, "Debug Mode", n("Debug"));
    outln(&out.join("\n"));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(binary_size(1024.0 * 1024.0 * 1024.0 * 15.5), "15.5GiB");
        assert_eq!(binary_size(100.0), "100B");
    }
}
