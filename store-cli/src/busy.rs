//! A line that says the command is working, for work without a count to show (checking,
//! collecting, tabulating a big store): after a second, `\r<what>… <seconds> s` on stderr,
//! rewritten four times a second and cleared at the end — only on a terminal, never with
//! `--quiet` or `--json` (push and pull show their own counts).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the running command has done so far, if it counts (fsck: objects checked); shown on
/// the line when not zero.
pub static DONE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The line's text after `elapsed`.
fn text(what: &str, elapsed: Duration) -> String {
    match DONE.load(Ordering::Relaxed) {
        0 => format!("\r{what}… {:.1} s ", elapsed.as_secs_f64()),
        n => format!("\r{what}… {n} done, {:.1} s ", elapsed.as_secs_f64()),
    }
}

/// Shows the line while it lives.
pub struct Busy {
    stop: Arc<AtomicBool>,
    shown: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Busy {
    /// Starts the line for `what` if `wanted` (not quiet, not JSON) and stderr is a terminal.
    /// `MANDALA_BUSY_AFTER_MS` sets the delay before the first line (default 1000).
    pub fn start(what: &'static str, wanted: bool) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let shown = Arc::new(AtomicBool::new(false));
        let thread = (wanted && std::io::stderr().is_terminal()).then(|| {
            let after = std::env::var("MANDALA_BUSY_AFTER_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(Duration::from_secs(1), Duration::from_millis);
            let (stop, shown) = (stop.clone(), shown.clone());
            let started = Instant::now();
            if after.is_zero() {
                // At once (for tests): before the work, whatever the thread's scheduling.
                eprint!("{}", text(what, Duration::ZERO));
                shown.store(true, Ordering::Relaxed);
            }
            std::thread::spawn(move || {
                let mut next = after.max(Duration::from_millis(250));
                while !stop.load(Ordering::Relaxed) {
                    let elapsed = started.elapsed();
                    if elapsed >= next {
                        eprint!("{}", text(what, elapsed));
                        let _ = std::io::stderr().flush();
                        shown.store(true, Ordering::Relaxed);
                        next = elapsed + Duration::from_millis(250);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        });
        Busy {
            stop,
            shown,
            thread,
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if self.shown.load(Ordering::Relaxed) {
            // Erase the line: what the command prints next starts clean.
            eprint!("\r\x1b[2K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_the_count_when_there_is_one() {
        assert_eq!(
            text("checking", Duration::from_millis(1500)),
            "\rchecking… 1.5 s "
        );
        DONE.store(1234, Ordering::Relaxed);
        assert_eq!(
            text("checking", Duration::from_millis(1500)),
            "\rchecking… 1234 done, 1.5 s "
        );
        DONE.store(0, Ordering::Relaxed);
    }
}
