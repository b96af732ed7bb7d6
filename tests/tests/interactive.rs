//! netloom's own CLI in interactive mode: `run -it`, `run -i`, `exec -it`,
//! `start -ai`. `script` (util-linux) gives the CLI a terminal.

use std::process::Command;
use std::time::Duration;

use netloom_e2e::{Daemon, Out, bin_dir, daemon_or_skip, run_cmd};

/// Runs `sh -c SCRIPT` with `@nl@` replaced by `netloom -H <daemon>` (45 s timeout).
fn shell(d: &Daemon, script: &str) -> Out {
    let nl = format!(
        "{} -H {}",
        bin_dir().join("netloom").display(),
        d.host_arg()
    );
    let mut c = Command::new("sh");
    c.args(["-c", &script.replace("@nl@", &nl)]);
    run_cmd(c, Duration::from_secs(45))
}

/// True if `script` is installed; prints a skip otherwise.
fn have_script() -> bool {
    let ok = Command::new("script").arg("--version").output().is_ok();
    if !ok {
        println!("SKIP: no `script` (util-linux) to give the CLI a terminal");
    }
    ok
}

#[test]
fn netloom_run_it_i_and_terminal_restored() {
    let d = daemon_or_skip!();
    if !have_script() {
        return;
    }
    // A terminal from the container's devpts, sized like the local one.
    let o = shell(
        &d,
        "script -qec 'stty rows 33 cols 101; @nl@ run -it --rm busybox sh -c \"tty; stty size; exit 5\"' /dev/null",
    );
    assert!(o.stdout.contains("/dev/pts/0"), "{o}");
    assert!(o.stdout.contains("33 101"), "ConsoleSize/resize: {o}");
    assert_eq!(o.code, 5, "{o}");
    // Typed input in raw mode; the exit code comes back.
    let o = shell(
        &d,
        "(sleep 1; printf 'echo typed-$((6*7))\\r'; sleep 1; printf 'exit 3\\r'; sleep 2) | script -qec '@nl@ run -it --rm busybox sh' /dev/null",
    );
    assert!(o.stdout.contains("typed-42"), "{o}");
    assert_eq!(o.code, 3, "{o}");
    // The local terminal's settings are restored afterwards.
    let dir = d.dir.display().to_string();
    let o = shell(
        &d,
        &format!(
            "script -qec 'stty -a > {dir}/before; @nl@ run -it --rm busybox true; stty -a > {dir}/after' /dev/null"
        ),
    );
    assert_eq!(o.code, 0, "{o}");
    let before = std::fs::read_to_string(d.dir.join("before")).unwrap_or_default();
    let after = std::fs::read_to_string(d.dir.join("after")).unwrap_or_default();
    assert!(before.contains("echo"), "stty output: {before}");
    assert_eq!(before, after, "terminal settings restored");
    // -i without a terminal: a pipe, closed at EOF.
    let o = shell(&d, "printf 'hi\\nthere\\n' | @nl@ run -i --rm busybox cat");
    assert_eq!(o.stdout, "hi\nthere\n", "{o}");
    assert_eq!(o.code, 0, "{o}");
    // -it needs a terminal to read from.
    let o = shell(&d, "echo x | @nl@ run -it --rm busybox cat");
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stderr.contains("the input device is not a TTY"), "{o}");
}

#[test]
fn netloom_exec_it_and_start_ai() {
    let d = daemon_or_skip!();
    if !have_script() {
        return;
    }
    d.run_sleeper("ex1", &[]);
    let o = shell(
        &d,
        "(sleep 1; printf 'stty size; echo in-exec-$((5*5))\\r'; sleep 1; printf 'exit 6\\r'; sleep 2) | script -qec 'stty rows 29 cols 91; @nl@ exec -it ex1 sh' /dev/null",
    );
    assert!(o.stdout.contains("in-exec-25"), "{o}");
    assert!(o.stdout.contains("29 91"), "exec resize: {o}");
    assert_eq!(o.code, 6, "{o}");
    let o = shell(&d, "echo piped | @nl@ exec -i ex1 cat");
    assert_eq!(o.stdout, "piped\n", "{o}");
    // start -ai: attached before the start, so the first output is not lost.
    d.ok(&[
        "create",
        "--name",
        "sa1",
        "busybox",
        "sh",
        "-c",
        "echo first-line; exit 4",
    ]);
    let o = shell(&d, "@nl@ start -a sa1");
    assert_eq!(o.stdout, "first-line\n", "{o}");
    assert_eq!(o.code, 4, "{o}");
    d.ok(&[
        "create",
        "--name",
        "sa2",
        "-i",
        "busybox",
        "sh",
        "-c",
        "read x; echo got-$x; exit 2",
    ]);
    let o = shell(&d, "echo abc | @nl@ start -ai sa2");
    assert_eq!(o.stdout, "got-abc\n", "{o}");
    assert_eq!(o.code, 2, "{o}");
}

#[test]
fn netloom_run_it_detach_keys() {
    // ctrl-p ctrl-q leaves the session; the container keeps running.
    let d = daemon_or_skip!();
    if !have_script() {
        return;
    }
    let o = shell(
        &d,
        "(sleep 1; printf '\\020\\021'; sleep 3) | script -qec '@nl@ run -it --name det1 busybox sh' /dev/null",
    );
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "det1"]),
        "true"
    );
    let o = shell(
        &d,
        "(sleep 1; printf 'exit 8\\r'; sleep 2) | script -qec '@nl@ start -ai det1' /dev/null",
    );
    assert_eq!(
        o.code, 8,
        "start -ai on a running container reattaches: {o}"
    );
}
