//! Finding the store a command works on: `--store`, `$MANDALA_STORE`, or the nearest store
//! in the current directory or its parents, as git finds `.git` (stopping before any directory
//! listed in `$MANDALA_CEILING_DIRECTORIES`, as git's `GIT_CEILING_DIRECTORIES`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

fn is_store(dir: &Path) -> bool {
    dir.join("mandala.toml").is_file()
}

/// The store stores in `dir`: `dir` itself, or its children named `*.mandala`.
fn stores_in(dir: &Path) -> Result<Vec<PathBuf>> {
    if is_store(dir) {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(found);
    };
    for e in rd {
        let p = e
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if p.extension().is_some_and(|x| x == "mandala") && is_store(&p) {
            found.push(p);
        }
    }
    found.sort();
    Ok(found)
}

/// The store to use.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("MANDALA_STORE") {
        return Ok(PathBuf::from(p));
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    // As git's GIT_CEILING_DIRECTORIES: the search stops before entering these.
    let ceilings: Vec<PathBuf> = std::env::var_os("MANDALA_CEILING_DIRECTORIES")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    for dir in cwd.ancestors() {
        if ceilings.iter().any(|c| c == dir) {
            break;
        }
        let found = stores_in(dir)?;
        match found.len() {
            0 => continue,
            1 => return Ok(found.into_iter().next().expect("one")),
            _ => bail!(
                "several stores in {}: {}; choose one with --store",
                dir.display(),
                found
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    bail!(
        "no mandala store in {} or its parents (looked for mandala.toml and *.mandala directories); pass --store PATH",
        cwd.display()
    )
}
