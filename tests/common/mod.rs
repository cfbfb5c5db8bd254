//! Helpers shared by the end-to-end tests.

use std::path::Path;
use std::process::{Command, Stdio};

/// A command that runs this test binary again on its `#[ignore]`d helper test `child`, which
/// reads its job from the environment `env` (the test files that use it each define `child`);
/// output piped.
#[allow(dead_code)] // not every test binary starts helper processes
pub fn helper_process(env: &[(&str, &std::ffi::OsStr)]) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .envs(env.iter().copied())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

/// Copies the directory tree `from` to `to` (files overwrite files of the same name).
#[allow(dead_code)] // not every test binary copies stores
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Options that create a format-1 store (one file per object), for tests of what format 1
/// does with its loose files; opening an existing store keeps its format whatever these say.
#[allow(dead_code)] // not every test binary uses format 1
pub fn format1() -> mandala::OpenOptions {
    mandala::OpenOptions {
        format: 1,
        ..mandala::OpenOptions::default()
    }
}

/// Options that create a store of `format` (default: the newest).
#[allow(dead_code)] // not every test binary makes one
pub fn format(format: u32) -> mandala::OpenOptions {
    mandala::OpenOptions {
        format,
        ..mandala::OpenOptions::default()
    }
}

/// Runs `cmd args` in `dir` and returns its output; fails the test (with both outputs) if it
/// fails.
#[allow(dead_code)] // not every test binary runs commands
pub fn sh(dir: &Path, cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A git repository at `repo` holding an empty store at `store`, committed on `main`; then
/// branch `a` commits what `on_a` adds to the store, branch `b` (from `main`) what `on_b`
/// adds, and `a` merges `b`. Asserts the merge leaves nothing to resolve or commit.
#[allow(dead_code)] // not every test binary merges stores
pub fn merge_in_git(repo: &Path, store: &Path, on_a: impl FnOnce(), on_b: impl FnOnce()) {
    let git = |args: &[&str]| {
        let mut all = vec![
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ];
        all.extend_from_slice(args);
        sh(repo, "git", &all)
    };
    git(&["init", "-q"]);
    mandala::Storage::open(store).unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-qm", "empty store"]);
    git(&["checkout", "-qb", "a"]);
    on_a();
    git(&["add", "-A"]);
    git(&["commit", "-qm", "a's calls"]);
    git(&["checkout", "-q", "main"]);
    git(&["checkout", "-qb", "b"]);
    on_b();
    git(&["add", "-A"]);
    git(&["commit", "-qm", "b's calls"]);
    git(&["checkout", "-q", "a"]);
    git(&["merge", "-q", "--no-edit", "b"]);
    assert_eq!(
        git(&["status", "--porcelain"]),
        "",
        "a clean merge, nothing left over"
    );
}

/// `rsync -a SRC/ DEST/`: copies a store's files into another directory (a merge by union).
#[allow(dead_code)] // not every test binary merges stores
pub fn rsync_into(src: &Path, dest: &Path) {
    let parent = dest.parent().expect("a store lives in a directory");
    sh(
        parent,
        "rsync",
        &[
            "-a",
            &format!("{}/", src.display()),
            &format!("{}/", dest.display()),
        ],
    );
}

/// Runs docs/tools/read_pack.py (Python with blake3, zstandard and cbor2, which .ci/run
/// installs) on the first pack index under `store`'s `packs/`, asserts it succeeded, and
/// returns what it printed.
#[allow(dead_code)]
pub fn read_first_pack(store: &Path) -> String {
    let have = Command::new("python3")
        .args(["-c", "import blake3, zstandard, cbor2"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        have,
        "this test needs python3 with: pip install blake3 zstandard cbor2 (.ci/run installs them)"
    );
    let idx = std::fs::read_dir(store.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "idx"))
        .expect("a sealed pack");
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/tools/read_pack.py"))
        .arg(&idx)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
