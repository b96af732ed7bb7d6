//! The `netloom-cni` binary: a CNI plugin (see the library docs).

use std::io::{Read, Write};

fn main() {
    netloom_cni::init_logging();
    let env = netloom_cni::config::CniEnv::from_process();
    let mut stdin = Vec::new();
    let out = if env.command.is_some() {
        match std::io::stdin().read_to_end(&mut stdin) {
            Ok(_) => netloom_cni::run(env, &stdin),
            Err(e) => netloom_cni::Outcome {
                stdout: format!(
                    "{}\n",
                    serde_json::json!({"cniVersion": "1.1.0", "code": 5, "msg": format!("read stdin: {e}")})
                ),
                stderr: String::new(),
                code: 1,
            },
        }
    } else {
        netloom_cni::run(env, &stdin)
    };
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    let _ = std::io::stderr().write_all(out.stderr.as_bytes());
    tracing::debug!("exit");
    std::process::exit(out.code);
}
