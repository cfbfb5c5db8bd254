//! Helpers shared by the CLI's test binaries.

use std::path::Path;
use std::process::Command;

/// Runs `mandala --store STORE ARGS` on a pseudo-terminal (`script`, util-linux) with `envs`
/// set (`None`: removed), and returns what the terminal showed (stdout and stderr together).
pub fn on_tty(store: &Path, args: &str, envs: &[(&str, Option<&str>)]) -> String {
    let bin = env!("CARGO_BIN_EXE_mandala");
    let mut c = Command::new("script");
    c.args([
        "-qec",
        &format!("{bin} --store {} {args}", store.display()),
        "/dev/null",
    ]);
    for (k, v) in envs {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c
        .output()
        .expect("`script` (util-linux) runs a command on a pseudo-terminal");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
