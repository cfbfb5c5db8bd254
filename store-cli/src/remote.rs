//! `mandala remote add|list|remove`, `push`, `pull`, `fetch` (docs/REMOTES.md).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use store_fs::FsBackend;
use store_remote::{RemoteConfig, Remotes, SyncOptions};

use crate::RemoteAction;

pub fn manage(
    store: &FsBackend,
    action: &RemoteAction,
    as_json: bool,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let mut remotes = Remotes::load(store.root())?;
    match action {
        RemoteAction::Add {
            name,
            url,
            endpoint,
            region,
            profile,
            lazy,
        } => {
            remotes.add(
                name,
                RemoteConfig {
                    url: url.clone(),
                    endpoint: endpoint.clone(),
                    region: region.clone(),
                    profile: profile.clone(),
                    lazy: *lazy,
                },
            )?;
            if !as_json {
                writeln!(out, "Added remote {name} ({url})")?;
            }
        }
        RemoteAction::Remove { name } => {
            let removed = remotes.remove(name)?;
            if !as_json {
                writeln!(out, "Removed remote {name} ({})", removed.url)?;
            }
        }
        RemoteAction::List => {
            if as_json {
                let list: Vec<_> = remotes
                    .iter()
                    .map(|(n, c)| json!({"name": n, "url": c.url, "endpoint": c.endpoint, "region": c.region, "profile": c.profile, "lazy": c.lazy}))
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                for (n, c) in remotes.iter() {
                    let endpoint = c
                        .endpoint
                        .as_deref()
                        .map(|e| format!(" (endpoint {e})"))
                        .unwrap_or_default();
                    let lazy = if c.lazy { " (lazy)" } else { "" };
                    writeln!(out, "{n}\t{}{endpoint}{lazy}", c.url)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The remote a command names, or the default: `origin`, else the store's only remote.
fn pick(remotes: &Remotes, name: Option<&str>) -> Result<String> {
    if let Some(n) = name {
        return Ok(n.to_string());
    }
    let names: Vec<&str> = remotes.iter().map(|(n, _)| n).collect();
    match names.as_slice() {
        [only] => Ok(only.to_string()),
        _ if names.contains(&"origin") => Ok("origin".into()),
        [] => {
            anyhow::bail!("this store has no remotes; add one with `mandala remote add NAME URL`")
        }
        _ => anyhow::bail!(
            "this store has several remotes ({}); name one",
            names.join(", ")
        ),
    }
}

pub fn transfer(
    store: &FsBackend,
    action: &'static str,
    name: Option<&str>,
    quiet: bool,
    as_json: bool,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let remotes = Remotes::load(store.root())?;
    let name = pick(&remotes, name)?;
    let url = remotes.get(&name)?.url.clone();
    // A progress line on a terminal, rewritten in place at most every 100 ms.
    let show = !quiet && !as_json && std::io::stderr().is_terminal();
    let last = std::sync::Mutex::new(std::time::Instant::now());
    let progress = |p: &store_remote::Progress| {
        let mut last = last.lock().unwrap();
        if last.elapsed() < std::time::Duration::from_millis(100) && p.files < p.files_total {
            return;
        }
        *last = std::time::Instant::now();
        let rate = p.bytes as f64 / p.elapsed.as_secs_f64().max(1e-3);
        eprint!(
            "\r{action} {name}: {}/{} files, {} / {}, {}/s   ",
            p.files,
            p.files_total,
            human(p.bytes as f64),
            human(p.bytes_total as f64),
            human(rate)
        );
    };
    let options = SyncOptions {
        progress: if show { Some(&progress) } else { None },
        ..SyncOptions::default()
    };
    let started = std::time::Instant::now();
    let report = match action {
        "push" => store_remote::push(store, &name, &options),
        "pull" => store_remote::pull(store, &name, &options),
        _ => store_remote::fetch(store, &name, &options),
    };
    if show {
        eprintln!();
    }
    let report = report.with_context(|| format!("{action} {name} ({url}) failed"))?;
    let secs = started.elapsed().as_secs_f64();
    if as_json {
        writeln!(
            out,
            "{}",
            json!({"remote": name, "url": url, "action": action, "files": report.files,
                   "bytes": report.bytes, "already": report.already,
                   "requests": report.requests, "seconds": secs})
        )?;
    } else {
        let verb = if action == "push" {
            "uploaded"
        } else {
            "downloaded"
        };
        writeln!(
            out,
            "{action} {name}: {verb} {} files ({}), {} already there; {} requests in {secs:.2} s",
            report.files,
            human(report.bytes as f64),
            report.already,
            report.requests
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn human(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}
