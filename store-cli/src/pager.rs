//! Output on a terminal: colour (off with `NO_COLOR`, `TERM=dumb`, or when piped), and long
//! output through a pager, as git's does: `$MANDALA_PAGER`, else
//! `$PAGER`, else `less` (with `LESS=FRX` unless set: it quits at once when the output fits on
//! one screen, and keeps colours). An empty `MANDALA_PAGER` (or `cat`) turns it off; a pager that
//! cannot start is skipped.

use std::io::{self, Write};
use std::process::{Command, Stdio};

/// Shows `text` through the pager, or writes it to `out` if there is none.
pub fn show(text: &[u8], out: &mut impl Write) -> io::Result<()> {
    let pager = std::env::var("MANDALA_PAGER")
        .or_else(|_| std::env::var("PAGER"))
        .unwrap_or_else(|_| "less".into());
    if text.is_empty() || pager.trim().is_empty() || pager.trim() == "cat" {
        return out.write_all(text);
    }
    let mut command = Command::new("sh");
    command.arg("-c").arg(&pager).stdin(Stdio::piped());
    if std::env::var_os("LESS").is_none() {
        command.env("LESS", "FRX");
    }
    let Ok(mut child) = command.spawn() else {
        return out.write_all(text);
    };
    out.flush()?;
    if let Some(mut stdin) = child.stdin.take() {
        // The pager may quit before reading everything (the user pressed q): not an error.
        let _ = stdin.write_all(text);
    }
    // 127: the shell found no such command (no `less` installed): show the text anyway.
    if child.wait()?.code() == Some(127) {
        return out.write_all(text);
    }
    Ok(())
}

/// Whether output may use colour: stdout is a terminal, `NO_COLOR` is unset and `TERM` is not
/// `dumb` (<https://no-color.org>).
pub fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").is_ok_and(|t| t != "dumb")
}

/// `line` in bold when colour is on.
pub fn bold(line: &str) -> String {
    if colour() {
        format!("\x1b[1m{line}\x1b[0m")
    } else {
        line.to_string()
    }
}
