//! The README's quick start (the section up to its first subsection), taken from the README itself and run as written (only its
//! `/tmp/` paths are moved into the test's own directory), against a test daemon in its
//! own network namespace. If the README drifts from what netloom does, this fails.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use netloom_e2e::{bin_dir, daemon_or_skip, run_cmd};

/// The shell commands of every ```sh block in the README's "Quick start" section, one
/// entry per command (backslash continuations joined).
fn quick_start_commands(readme: &str) -> Vec<String> {
    let mut in_section = false;
    let mut in_block = false;
    let mut cmds = Vec::new();
    let mut pending = String::new();
    for line in readme.lines() {
        // The section ends at the next heading of any level (its `###` subsections
        // show interactive use, which needs a terminal).
        if line.starts_with('#') && !in_block {
            in_section = line.starts_with("## Quick start");
            continue;
        }
        if !in_section {
            continue;
        }
        if line.trim_start().starts_with("```") {
            in_block = !in_block && line.trim() == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                let cmd = pending.trim().to_string();
                pending.clear();
                if !cmd.is_empty() && !cmd.starts_with('#') {
                    cmds.push(cmd);
                }
            }
        }
    }
    cmds
}

#[test]
fn readme_quick_start_runs_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("read README.md");
    let cmds = quick_start_commands(&readme);
    assert!(
        cmds.iter().any(|c| c.contains("image import"))
            && cmds.iter().any(|c| c.contains("network prune")),
        "the README's quick start lost its commands: {cmds:#?}"
    );
    let d = daemon_or_skip!();
    let tmp = d.dir.join("readme");
    std::fs::create_dir_all(&tmp).expect("create the test's tmp dir");
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut outputs = Vec::new();
    for cmd in &cmds {
        let cmd = cmd.replace("/tmp/", &format!("{}/", tmp.display()));
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &d.name, "sh", "-c", &cmd])
            .env("NETLOOM_HOST", d.host_arg())
            .env("PATH", &path);
        let o = run_cmd(c, Duration::from_secs(60));
        assert!(o.ok(), "README command failed: {cmd}\n{o}");
        outputs.push((cmd, o.stdout));
    }
    let out = |needle: &str| -> &str {
        outputs
            .iter()
            .find(|(c, _)| c.contains(needle))
            .map(|(_, o)| o.as_str())
            .unwrap_or_else(|| panic!("no README command contains {needle:?}"))
    };
    // What the README's comments promise.
    let ls = out("network ls");
    for n in ["bridge", "host", "none"] {
        assert!(ls.contains(n), "network ls lacks {n}: {ls}");
    }
    assert!(out("exec c2 ping").contains("2 packets received"));
    assert!(out("port web").contains("80/tcp -> 0.0.0.0:5000"));
    assert_eq!(out("curl").trim(), "hello");
    let links: Vec<&str> = out("--network none")
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .collect();
    assert!(
        links.len() == 1 && links[0].contains(": lo:"),
        "a --network none container has only lo: {links:?}"
    );
    assert!(out("network prune").contains("localnet"));
    assert_eq!(
        d.ok(&["ps", "-aq"]),
        "",
        "the quick start removes its containers"
    );
}

#[test]
fn quick_start_parser_reads_blocks_and_continuations() {
    let md = "# x\n```sh\nnot this\n```\n## Quick start\ntext\n```sh\na \\\n  b\n# c\n\nd\n```\n```json\n{}\n```\n### Sub\n```sh\ne\n```\n";
    assert_eq!(quick_start_commands(md), vec!["a    b", "d"]);
}
