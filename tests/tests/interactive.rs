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

#[test]
fn netloom_attach_tty_type_detach_and_exit_code() {
    // `attach` to a `run -dit` shell: typed input reaches it in raw mode, ctrl-p
    // ctrl-q (or --detach-keys) leaves it running, and its exit code comes back.
    let d = daemon_or_skip!();
    if !have_script() {
        return;
    }
    d.ok(&["run", "-dit", "--name", "att1", "busybox", "sh"]);
    let o = shell(
        &d,
        "(sleep 1; printf 'stty size; echo att-$((6*7))\\r'; sleep 1; printf '\\020\\021'; sleep 2) | script -qec 'stty rows 31 cols 97; @nl@ attach att1' /dev/null",
    );
    assert!(o.stdout.contains("att-42"), "{o}");
    assert!(o.stdout.contains("31 97"), "attach resizes the TTY: {o}");
    assert!(o.stdout.contains("read escape sequence"), "{o}");
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "att1"]),
        "true",
        "detached, still running"
    );
    // Custom detach keys; ctrl-p ctrl-q is then ordinary input.
    let o = shell(
        &d,
        "(sleep 1; printf 'echo second-$((2+3))\\r'; sleep 1; printf '\\001x'; sleep 2) | script -qec '@nl@ attach --detach-keys ctrl-a,x att1' /dev/null",
    );
    assert!(o.stdout.contains("second-5"), "{o}");
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "att1"]),
        "true"
    );
    // The container's exit code is attach's.
    let o = shell(
        &d,
        "(sleep 1; printf 'exit 7\\r'; sleep 2) | script -qec '@nl@ attach att1' /dev/null",
    );
    assert_eq!(o.code, 7, "{o}");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.ExitCode}}",
            "att1"
        ]),
        "false 7"
    );
    // A stopped container, a missing one, bad detach keys: clear errors.
    let o = d.fail(&["attach", "att1"]);
    assert!(
        o.stderr
            .contains("You cannot attach to a stopped container, start it first"),
        "{o}"
    );
    let o = d.fail(&["attach", "no-such-ctr"]);
    assert!(o.stderr.contains("No such container: no-such-ctr"), "{o}");
    d.ok(&["start", "att1"]);
    let o = d.fail(&["attach", "--detach-keys", "alt-x", "att1"]);
    assert!(o.stderr.contains("invalid detach keys"), "{o}");
    // -t container, stdin not a terminal: refused like docker; --no-stdin is fine.
    let o = shell(&d, "echo x | @nl@ attach att1");
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stderr.contains("the input device is not a TTY"), "{o}");
    let o = shell(
        &d,
        "echo x | @nl@ attach --no-stdin att1 & p=$!; sleep 1; @nl@ kill att1 >/dev/null; wait $p; echo rc=$?",
    );
    assert!(o.stdout.ends_with("rc=137\n"), "{o}");
}

#[test]
fn netloom_attach_without_tty_and_sig_proxy() {
    // A `run -d -i` container without a TTY: a multiplexed stream, piped stdin.
    let d = daemon_or_skip!();
    d.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "atn1",
        "busybox",
        "sh",
        "-c",
        "read x; echo got-$x; echo err-$x >&2; exit 7",
    ]);
    let o = shell(&d, "echo abc | @nl@ attach atn1");
    assert_eq!(o.stdout, "got-abc\n", "{o}");
    assert_eq!(o.stderr, "err-abc\n", "stderr demultiplexed: {o}");
    assert_eq!(o.code, 7, "{o}");
    let dir = d.dir.display().to_string();
    // `cat` echoes; a SIGTERM to attach is forwarded to the container (sig-proxy).
    // The container's command is its PID 1 (as in Docker, no init): a PID 1 without a
    // handler ignores SIGTERM, so a shell traps it and exits 143.
    d.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "atn2",
        "busybox",
        "sh",
        "-c",
        "exec 3<&0; trap 'exit 143' TERM; cat <&3 & wait",
    ]);
    let o = shell(
        &d,
        &format!(
            "f={dir}/in2; mkfifo $f; @nl@ attach atn2 <$f & p=$!; (printf 'hello\\n'; exec sleep 20) >$f 2>/dev/null & w=$!; sleep 2; kill -TERM $p; wait $p; echo rc=$?; kill $w"
        ),
    );
    assert!(o.stdout.starts_with("hello\n"), "{o}");
    assert!(
        o.stdout.contains("rc=143"),
        "container killed by SIGTERM: {o}"
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "atn2"]),
        "false"
    );
    // --sig-proxy=false: the signal ends only the local client.
    d.ok(&["run", "-d", "-i", "--name", "atn3", "busybox", "cat"]);
    let o = shell(
        &d,
        &format!(
            "f={dir}/in3; mkfifo $f; @nl@ attach --sig-proxy=false atn3 <$f & p=$!; (printf 'hi\\n'; exec sleep 20) >$f 2>/dev/null & w=$!; sleep 2; kill -TERM $p; wait $p; echo rc=$?; kill $w"
        ),
    );
    assert!(o.stdout.starts_with("hi\n"), "{o}");
    assert!(o.stdout.contains("rc=143"), "{o}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "atn3"]),
        "true"
    );
    // --no-stdin: output only; the container keeps its stdin.
    let o = shell(
        &d,
        "@nl@ attach --no-stdin atn3 & p=$!; sleep 1; @nl@ kill atn3 >/dev/null; wait $p; echo rc=$?",
    );
    assert!(o.stdout.contains("rc=137"), "{o}");
    // Neither -i nor -t: output only, then the exit code.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "atn4",
        "busybox",
        "sh",
        "-c",
        "sleep 2; echo late-out; exit 4",
    ]);
    let o = d.cli(&["attach", "atn4"]);
    assert_eq!(o.stdout, "late-out\n", "{o}");
    assert_eq!(o.code, 4, "{o}");
}

#[test]
fn attach_logs_replays_the_log_of_interactive_containers() {
    // `attach?logs=1` first replays what the container wrote: one raw stream for a
    // terminal, frames for an open stdin; `stream=0` ends after the replay; with a live
    // session the replay and the live output meet without loss or repeat.
    let d = daemon_or_skip!();
    d.ok(&[
        "run",
        "-t",
        "--name",
        "rt",
        "busybox",
        "sh",
        "-c",
        "echo replay-$((2*4))",
    ]);
    let (code, body) = d.api(
        "POST",
        "/containers/rt/attach?logs=1&stream=0&stdout=1&stderr=1",
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, "replay-8\r\n", "the terminal's raw output, unframed");
    // Without logs=1 a stopped container's attach has nothing to say.
    let (code, body) = d.api("POST", "/containers/rt/attach?stream=0&stdout=1", None);
    assert_eq!((code, body.as_str()), (200, ""));

    d.ok(&[
        "run",
        "-i",
        "--name",
        "ri",
        "busybox",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2",
    ]);
    let (code, body) = d.api(
        "POST",
        "/containers/ri/attach?logs=1&stream=0&stdout=1&stderr=1",
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\u{1}\0\0\0\0\0\0\u{7}to-out\n"),
        "a stdout frame: {body:?}"
    );
    assert!(
        body.contains("\u{2}\0\0\0\0\0\0\u{7}to-err\n"),
        "a stderr frame: {body:?}"
    );
    let (_, body) = d.api(
        "POST",
        "/containers/ri/attach?logs=1&stream=0&stdout=1&stderr=0",
        None,
    );
    assert!(!body.contains("to-err"), "stderr not asked for: {body:?}");

    // A running terminal, attached while it writes: the replay (done by the shim, in
    // its output loop) and the live output meet with no line lost or repeated,
    // wherever the junction falls.
    d.ok(&[
        "run",
        "-dt",
        "--name",
        "rl",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 3000 ]; do echo $i; i=$((i+1)); [ $((i % 50)) = 0 ] && usleep 10000; done; echo counted; exec sleep 600",
    ]);
    assert!(
        netloom_e2e::wait_for(Duration::from_secs(10), || !d
            .ok(&["logs", "rl"])
            .is_empty()),
        "the first line is logged"
    );
    let (code, body) = std::thread::scope(|sc| {
        let attach = sc.spawn(|| {
            d.api(
                "POST",
                "/containers/rl/attach?logs=1&stream=1&stdout=1",
                None,
            )
        });
        assert!(
            netloom_e2e::wait_for(Duration::from_secs(30), || d
                .ok(&["logs", "rl"])
                .contains("counted")),
            "the container finished counting"
        );
        // Let the attach session see the last line, then end it.
        std::thread::sleep(Duration::from_secs(1));
        d.ok(&["kill", "rl"]);
        attach.join().unwrap()
    });
    assert_eq!(code, 200, "{body}");
    let mut want: String = (0..3000).map(|i| format!("{i}\r\n")).collect();
    want.push_str("counted\r\n");
    if body != want {
        let got: Vec<&str> = body.split("\r\n").collect();
        let first_bad = got
            .iter()
            .enumerate()
            .find(|(i, l)| **l != i.to_string())
            .map(|(i, l)| format!("line {i} is {l:?}"));
        panic!(
            "replay + live output is not the exact sequence ({} lines; first difference: {first_bad:?})",
            got.len()
        );
    }
}
