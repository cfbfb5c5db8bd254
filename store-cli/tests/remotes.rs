//! Remotes (docs/REMOTES.md) against a real directory and a real S3-compatible server
//! (`moto_server`, started here; `.ci/run` installs it): push, pull, fetch, concurrent
//! pushes, an interrupted push completed by the next, corrupted remote objects refused.
//! The S3 tests fail — they never pass silently — when `moto_server` cannot be started.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mandala::{op, Storage};

mod common;

#[op]
fn work(i: u64) -> u64 {
    i * 3 + 1
}

/// Large enough (about 90 KB of CBOR) to be a loose value, not packed.
#[op]
fn big(i: u64) -> Vec<u64> {
    (0..10_000)
        .map(|k| (k + 1) * 1_000_000_007 * (i + 1))
        .collect()
}

fn compute(s: &Storage, range: std::ops::Range<u64>, bigs: u64) {
    s.run(|| -> mandala::Result<()> {
        for i in range {
            work(i)?;
        }
        for i in 0..bigs {
            big(i)?;
        }
        Ok(())
    })
    .unwrap();
}

/// A remote for a test: a directory, or a bucket on a moto server.
enum TestRemote {
    Dir(tempfile::TempDir),
    S3 { server: Moto, bucket: String },
}

/// A `moto_server` on a free port, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Moto {
    // Credentials moto accepts; set once, before any thread reads the environment.
    static ENV: std::sync::Once = std::sync::Once::new();
    ENV.call_once(|| {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_REGION", "us-east-1");
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start moto_server ({e}): install it with `pip install 'moto[server]'` (.ci/run does)")
        });
    let server = Moto { child, port };
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "moto_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// One unsigned HTTP request to the moto server (it does not check signatures): the status
/// and the body.
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let head_end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..head_end]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = resp[head_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

impl TestRemote {
    fn dir() -> TestRemote {
        TestRemote::Dir(tempfile::tempdir().unwrap())
    }

    fn s3() -> TestRemote {
        let server = start_moto();
        let bucket = "team-cache".to_string();
        let (status, body) = http(server.port, "PUT", &format!("/{bucket}"), b"");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        TestRemote::S3 { server, bucket }
    }

    fn url(&self) -> String {
        match self {
            TestRemote::Dir(d) => format!("file://{}/remote", d.path().display()),
            TestRemote::S3 { bucket, .. } => format!("s3://{bucket}/projects/demo"),
        }
    }

    fn endpoint(&self) -> Option<String> {
        match self {
            TestRemote::Dir(_) => None,
            TestRemote::S3 { server, .. } => Some(format!("http://127.0.0.1:{}", server.port)),
        }
    }

    /// Adds this remote to `store` as `origin`, with the CLI.
    fn add_to(&self, store: &Path) {
        let url = self.url();
        let mut args = vec!["remote", "add", "origin", url.as_str()];
        let endpoint = self.endpoint();
        if let Some(e) = &endpoint {
            args.extend(["--endpoint", e.as_str()]);
        }
        cli(store, &args);
    }

    /// Every key (relative to the remote's root).
    fn keys(&self) -> Vec<String> {
        match self {
            TestRemote::Dir(d) => {
                let root = d.path().join("remote");
                let mut out = Vec::new();
                walk(&root, &root, &mut out);
                out.retain(|k| !k.starts_with("tmp/"));
                out.sort();
                out
            }
            TestRemote::S3 { server, bucket } => {
                let out = boto(server.port, bucket, "list", "", None);
                let mut keys: Vec<String> = String::from_utf8(out)
                    .unwrap()
                    .lines()
                    .map(|k| k.strip_prefix("projects/demo/").unwrap().to_string())
                    .collect();
                keys.sort();
                keys
            }
        }
    }

    fn read(&self, key: &str) -> Vec<u8> {
        match self {
            TestRemote::Dir(d) => std::fs::read(d.path().join("remote").join(key)).unwrap(),
            TestRemote::S3 { server, bucket } => boto(server.port, bucket, "get", key, None),
        }
    }

    /// Overwrites `key` (as a damaged disk or a hostile writer would).
    fn overwrite(&self, key: &str, bytes: &[u8]) {
        match self {
            TestRemote::Dir(d) => {
                let path = d.path().join("remote").join(key);
                std::fs::remove_file(&path).unwrap();
                std::fs::write(path, bytes).unwrap()
            }
            TestRemote::S3 { server, bucket } => {
                boto(server.port, bucket, "put", key, Some(bytes));
            }
        }
    }

    fn delete(&self, key: &str) {
        match self {
            TestRemote::Dir(d) => std::fs::remove_file(d.path().join("remote").join(key)).unwrap(),
            TestRemote::S3 { server, bucket } => {
                boto(server.port, bucket, "delete", key, None);
            }
        }
    }
}

/// Direct access to the bucket, as another S3 client would (boto3, installed with moto):
/// `list` prints the keys, `get` the object, `put` writes stdin, `delete` removes.
fn boto(port: u16, bucket: &str, action: &str, key: &str, input: Option<&[u8]>) -> Vec<u8> {
    const SCRIPT: &str = r#"
import sys, boto3
port, bucket, action, key = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
key = "projects/demo/" + key
if action == "list":
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="projects/demo/"):
        for o in page.get("Contents", []):
            print(o["Key"])
elif action == "get":
    sys.stdout.buffer.write(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
elif action == "put":
    s3.put_object(Bucket=bucket, Key=key, Body=sys.stdin.buffer.read())
elif action == "delete":
    s3.delete_object(Bucket=bucket, Key=key)
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT, &port.to_string(), bucket, action, key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.unwrap_or_default()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "boto3 {action} {key}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}

fn cli(store: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mandala"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("MANDALA_STORE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mandala {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn cli_fails(store: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mandala"))
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "mandala {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn new_store(dir: &tempfile::TempDir, name: &str) -> (PathBuf, Storage) {
    let path = dir.path().join(name);
    let s = Storage::open(&path).unwrap();
    (path, s)
}

/// Every call of `range` (and the large values) is a hit in `s`, loading the same values.
fn all_hits(s: &Storage, range: std::ops::Range<u64>, bigs: u64) {
    let before = s.stats().total.executed;
    s.run(|| -> mandala::Result<()> {
        for i in range.clone() {
            assert_eq!(s.unwrap(&work(i)?)?, i * 3 + 1);
        }
        for i in 0..bigs {
            assert_eq!(s.unwrap(&big(i)?)?[7], 8 * 1_000_000_007 * (i + 1));
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        s.stats().total.executed,
        before,
        "a pulled call was computed again"
    );
}

fn push_then_pull_into_an_empty_store(remote: TestRemote) {
    let dir = tempfile::tempdir().unwrap();
    let (a_path, a) = new_store(&dir, "a.mandala");
    compute(&a, 0..300, 3);
    assert_eq!(a.stats().total.executed, 303);
    remote.add_to(&a_path);
    // A running program's log is pushed once sealed: here, when its handle is dropped.
    drop(a);
    let pushed = cli(&a_path, &["push", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&pushed).unwrap();
    // The pack and its index, three loose values; and the remote's mandala.toml beside them.
    assert_eq!(report["files"], 5, "{pushed}");
    let keys = remote.keys();
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("values/")).count(),
        3,
        "{keys:?}"
    );
    assert_eq!(
        keys.iter().filter(|k| k.ends_with(".idx")).count(),
        1,
        "{keys:?}"
    );
    assert!(keys.contains(&"mandala.toml".to_string()), "{keys:?}");
    assert!(String::from_utf8(remote.read("mandala.toml"))
        .unwrap()
        .contains("format = 2"));
    // Pushing again uploads nothing, in a handful of requests.
    let again: serde_json::Value =
        serde_json::from_str(&cli(&a_path, &["push", "--json"])).unwrap();
    assert_eq!(again["files"], 0);
    assert!(again["requests"].as_u64().unwrap() <= 6, "{again}");

    // 1 000 new calls into a remote of 300: one pack and its index, in 7 requests.
    let a = Storage::open(&a_path).unwrap();
    compute(&a, 300..1300, 0);
    let more = a.push("origin").unwrap();
    assert_eq!((more.files, more.requests), (2, 7), "{more:?}");
    drop(a);

    let (b_path, _) = new_store(&dir, "b.mandala");
    remote.add_to(&b_path);
    let pulled = cli(&b_path, &["pull"]);
    assert!(pulled.contains("downloaded 5 files"), "{pulled}");
    let b = Storage::open(&b_path).unwrap();
    all_hits(&b, 0..1300, 3);
    assert_eq!(b.stats().total.hits, 1303);
    assert!(b.verify().unwrap().is_clean());
    // Fetch without the values, then the values on demand of a pull.
    let (c_path, _) = new_store(&dir, "c.mandala");
    remote.add_to(&c_path);
    let fetched: serde_json::Value =
        serde_json::from_str(&cli(&c_path, &["fetch", "--json"])).unwrap();
    assert_eq!(fetched["files"], 2, "only the packs: {fetched}");
    let c = Storage::open(&c_path).unwrap();
    all_hits(&c, 0..300, 0);
    assert_eq!(
        std::fs::read_dir(c_path.join("values")).map_or(0, |d| d.count()),
        0
    );
}

fn concurrent_pushes_make_a_union(remote: TestRemote) {
    let dir = tempfile::tempdir().unwrap();
    let (a_path, a) = new_store(&dir, "a.mandala");
    let (b_path, b) = new_store(&dir, "b.mandala");
    remote.add_to(&a_path);
    remote.add_to(&b_path);
    for round in 0..3u64 {
        let base = round * 1000;
        compute(&a, base..base + 200, 0);
        compute(&b, base + 100..base + 300, 0);
        std::thread::scope(|s| {
            let pa = s.spawn(|| a.push("origin").unwrap());
            let pb = s.spawn(|| b.push("origin").unwrap());
            pa.join().unwrap();
            pb.join().unwrap();
        });
        a.pull("origin").unwrap();
        b.pull("origin").unwrap();
        all_hits(&a, base..base + 300, 0);
        all_hits(&b, base..base + 300, 0);
    }
    assert!(a.verify().unwrap().is_clean());
    assert!(b.verify().unwrap().is_clean());
}

fn an_interrupted_push_is_completed_by_the_next(remote: TestRemote) {
    let dir = tempfile::tempdir().unwrap();
    let (a_path, a) = new_store(&dir, "a.mandala");
    compute(&a, 0..100, 1);
    a.flush().unwrap();
    compute(&a, 100..200, 0);
    remote.add_to(&a_path);
    a.push("origin").unwrap();
    // What a push killed before its second phase leaves: packs and values without the
    // indexes that make the packs visible.
    let indexes: Vec<String> = remote
        .keys()
        .into_iter()
        .filter(|k| k.ends_with(".idx"))
        .collect();
    assert_eq!(indexes.len(), 2);
    for k in &indexes {
        remote.delete(k);
    }
    let (b_path, b) = new_store(&dir, "b.mandala");
    remote.add_to(&b_path);
    let report = b.pull("origin").unwrap();
    assert_eq!(report.files, 1, "only the loose value: {report:?}");
    assert!(b.verify().unwrap().is_clean());
    let report = a.push("origin").unwrap();
    assert_eq!(
        report.files, 2,
        "the next push uploads the two indexes: {report:?}"
    );
    b.pull("origin").unwrap();
    all_hits(&b, 0..200, 1);
}

/// Real kills: `mandala push` SIGKILLed at moments spread over its run; after each, a pull
/// into a new store succeeds and what it gets is sound; the last push completes the remote.
fn a_killed_push_leaves_a_valid_remote(remote: TestRemote) {
    let dir = tempfile::tempdir().unwrap();
    let (a_path, a) = new_store(&dir, "a.mandala");
    for batch in 0..6u64 {
        compute(&a, batch * 100..batch * 100 + 100, 0);
        a.flush().unwrap();
    }
    compute(&a, 0..0, 4);
    drop(a);
    remote.add_to(&a_path);
    for (round, delay_ms) in [5u64, 20, 40, 80, 150].into_iter().enumerate() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mandala"))
            .args(["--store", a_path.to_str().unwrap(), "push", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let (b_path, b) = new_store(&dir, &format!("b{round}.mandala"));
        remote.add_to(&b_path);
        b.pull("origin").unwrap();
        let report = b.verify().unwrap();
        assert!(report.is_clean(), "round {round}: {report:?}");
        // Whatever calls it got are whole: each output value is there.
        let known = b.backend().all_calls().unwrap();
        assert!(known.len() <= 604, "round {round}");
        for call in &known {
            for o in &call.record.outputs {
                assert!(b.backend().has_value(&o.cid).unwrap(), "round {round}");
            }
        }
    }
    let report = Storage::open(&a_path).unwrap().push("origin").unwrap();
    assert!(report.already > 0 || report.files > 0);
    let (c_path, c) = new_store(&dir, "c.mandala");
    remote.add_to(&c_path);
    c.pull("origin").unwrap();
    all_hits(&c, 0..600, 4);
}

#[op]
fn gen(i: u64) -> Vec<u64> {
    (0..10_000).map(|k| (k + 1) * 1_000_000_007 + i).collect()
}

#[op]
fn feat(v: Vec<u64>) -> Vec<u64> {
    v.iter().map(|x| x / 3 + 1_000_000_000_000).collect()
}

#[op]
fn score(f: Vec<u64>, k: u64) -> u64 {
    f[k as usize] % 1000
}

fn pipeline(s: &Storage, unwrap_feat: bool) -> Vec<u64> {
    s.run(|| -> mandala::Result<Vec<u64>> {
        let mut out = Vec::new();
        for i in 0..5 {
            let f = feat(gen(i)?)?;
            out.push(s.unwrap(&score(&f, i)?)?);
            if unwrap_feat && i == 0 {
                assert_eq!(s.unwrap(&f)?.len(), 10_000);
            }
        }
        Ok(out)
    })
    .unwrap()
}

fn values_here(store: &Path) -> usize {
    let mut files = Vec::new();
    walk(&store.join("values"), &store.join("values"), &mut files);
    files.len()
}

/// A worker with an empty store and a lazy remote reuses a 3-op pipeline the team pushed:
/// nothing computed, the remote's pack fetched on the first miss, and a large value
/// downloaded only when it is loaded.
fn a_lazy_worker_downloads_only_what_it_loads(remote: TestRemote) {
    let dir = tempfile::tempdir().unwrap();
    let (a_path, a) = new_store(&dir, "a.mandala");
    let expected = pipeline(&a, false);
    assert_eq!(a.stats().total.executed, 15);
    remote.add_to(&a_path);
    a.push("origin").unwrap();
    assert_eq!(
        remote
            .keys()
            .iter()
            .filter(|k| k.starts_with("values/"))
            .count(),
        10
    );

    let (w_path, w) = new_store(&dir, "worker.mandala");
    drop(w);
    let url = remote.url();
    let mut args = vec!["remote", "add", "origin", url.as_str(), "--lazy"];
    let endpoint = remote.endpoint();
    if let Some(e) = &endpoint {
        args.extend(["--endpoint", e.as_str()]);
    }
    cli(&w_path, &args);
    let w = Storage::open(&w_path).unwrap(); // remotes.toml says lazy
    assert_eq!(pipeline(&w, false), expected);
    assert_eq!(
        w.stats().total.executed,
        0,
        "every call reused from the remote"
    );
    let report = w.remote_report().unwrap();
    // One look at the remote: 4 listings, the pack and its index.
    assert_eq!((report.files, report.requests), (1, 6), "{report:?}");
    assert_eq!(values_here(&w_path), 0, "no large value downloaded");
    // Loading one large value downloads that one, with one request.
    assert_eq!(pipeline(&w, true), expected);
    let report = w.remote_report().unwrap();
    assert_eq!((report.files, report.requests), (2, 7), "{report:?}");
    assert_eq!(values_here(&w_path), 1);
    assert_eq!(w.stats().total.executed, 0);
    // A new call is computed (after one more look at the remote at most).
    w.run(|| work(123_456)).unwrap();
    assert_eq!(w.stats().total.executed, 1);
}

fn corrupted_remote_objects_are_refused(remote: TestRemote) {
    let dir = tempfile::tempdir().unwrap();
    let (a_path, a) = new_store(&dir, "a.mandala");
    compute(&a, 0..50, 1);
    remote.add_to(&a_path);
    a.push("origin").unwrap();
    let keys = remote.keys();
    let pack = keys.iter().find(|k| k.ends_with(".pack")).unwrap().clone();
    let value = keys
        .iter()
        .find(|k| k.starts_with("values/"))
        .unwrap()
        .clone();
    for key in [&pack, &value] {
        let mut bytes = remote.read(key);
        let at = bytes.len() - 20;
        bytes[at] ^= 0x40;
        remote.overwrite(key, &bytes);
    }
    let (b_path, b) = new_store(&dir, "b.mandala");
    remote.add_to(&b_path);
    let err = cli_fails(&b_path, &["pull"]);
    assert!(err.contains("pull origin"), "{err}");
    assert!(
        err.contains(&pack) || err.contains(&value),
        "names the key: {err}"
    );
    assert!(err.contains("1 more"), "both are reported: {err}");
    // Nothing of either entered the store; what it holds is sound.
    assert!(!b_path.join(&pack).exists());
    assert!(!b_path.join(&value).exists());
    let packs = std::fs::read_dir(b_path.join("packs")).map_or(0, |d| d.count());
    assert_eq!(packs, 0);
    assert!(b.verify().unwrap().is_clean());
    drop(b);
    // The sender's push repairs nothing it believes is there: the remote stays damaged, and
    // every pull keeps refusing it (a later consolidated pack pushed from A replaces it).
    let err = cli_fails(&b_path, &["pull"]);
    assert!(err.contains("refused") || err.contains("hash"), "{err}");
}

/// About 45 MB of CBOR that zstd cannot shrink much: uploaded to S3 in parts (32 MiB and
/// more), downloaded as a stream.
#[op]
fn noise(seed: u64) -> Vec<f64> {
    let mut x = seed | 1;
    (0..5_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn a_large_value_travels_whole(remote: TestRemote) {
    let dir = tempfile::tempdir().unwrap();
    let (a_path, a) = new_store(&dir, "a.mandala");
    let r = a.run(|| noise(5)).unwrap();
    let value = a.unwrap(&r).unwrap();
    remote.add_to(&a_path);
    let report = a.push("origin").unwrap();
    assert_eq!(
        report.files, 3,
        "the value, the pack and its index: {report:?}"
    );
    if let TestRemote::S3 { .. } = remote {
        // mandala.toml (2), 4 listings, 3 uploads, and for the 40 MB value a HEAD and 5
        // parts of 8 MiB (a single put would make it 9).
        assert_eq!(report.requests, 15, "{report:?}");
    }
    let key = remote
        .keys()
        .into_iter()
        .find(|k| k.starts_with("values/"))
        .unwrap();
    let size = std::fs::metadata(a_path.join(&key)).unwrap().len();
    assert!(size > 32 << 20, "large enough to go up in parts: {size}");
    let (b_path, b) = new_store(&dir, "b.mandala");
    remote.add_to(&b_path);
    b.pull("origin").unwrap();
    let got = b.run(|| noise(5)).unwrap();
    assert_eq!(b.unwrap(&got).unwrap(), value);
    assert_eq!(b.stats().total.executed, 0);
    assert!(b.verify().unwrap().is_clean());
    // Pushing again finds it there (a HEAD for the large file, on S3).
    assert_eq!(a.push("origin").unwrap().files, 0);
}

#[test]
fn dir_a_large_value_travels_whole() {
    a_large_value_travels_whole(TestRemote::dir());
}

#[test]
fn s3_a_large_value_goes_up_in_parts_and_down_as_a_stream() {
    a_large_value_travels_whole(TestRemote::s3());
}

/// Pulls racing pushes: a pull takes in a pack only with the large values its calls name
/// (the pusher uploads values before packs, so the puller must list packs before values).
fn pulls_racing_pushes_get_only_whole_calls(remote: TestRemote) {
    let dir = tempfile::tempdir().unwrap();
    let (a_path, a) = new_store(&dir, "a.mandala");
    let (b_path, b) = new_store(&dir, "b.mandala");
    remote.add_to(&a_path);
    remote.add_to(&b_path);
    let done = std::sync::atomic::AtomicBool::new(false);
    let pulls = std::thread::scope(|s| {
        s.spawn(|| {
            for round in 0..40u64 {
                a.run(|| big(1000 + round)).unwrap();
                a.push("origin").unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut pulls = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            b.pull("origin").unwrap();
            pulls += 1;
            for call in b.backend().all_calls().unwrap() {
                for o in &call.record.outputs {
                    assert!(
                        b.backend().has_value(&o.cid).unwrap(),
                        "pull {pulls}: call {} came without its value {}",
                        call.hid.short(8),
                        o.cid.short(8)
                    );
                }
            }
        }
        pulls
    });
    assert!(pulls > 1, "the pulls ran beside the pushes");
    b.pull("origin").unwrap();
    for round in 0..40u64 {
        b.run(|| big(1000 + round)).unwrap();
    }
    assert_eq!(b.stats().total.executed, 0);
}

#[test]
fn dir_pulls_racing_pushes_get_only_whole_calls() {
    pulls_racing_pushes_get_only_whole_calls(TestRemote::dir());
}

#[test]
fn s3_pulls_racing_pushes_get_only_whole_calls() {
    pulls_racing_pushes_get_only_whole_calls(TestRemote::s3());
}

#[test]
fn dir_push_then_pull_into_an_empty_store() {
    push_then_pull_into_an_empty_store(TestRemote::dir());
}

#[test]
fn s3_push_then_pull_into_an_empty_store() {
    push_then_pull_into_an_empty_store(TestRemote::s3());
}

#[test]
fn dir_concurrent_pushes_make_a_union() {
    concurrent_pushes_make_a_union(TestRemote::dir());
}

#[test]
fn s3_concurrent_pushes_make_a_union() {
    concurrent_pushes_make_a_union(TestRemote::s3());
}

#[test]
fn dir_an_interrupted_push_is_completed_by_the_next() {
    an_interrupted_push_is_completed_by_the_next(TestRemote::dir());
}

#[test]
fn s3_an_interrupted_push_is_completed_by_the_next() {
    an_interrupted_push_is_completed_by_the_next(TestRemote::s3());
}

#[test]
fn dir_a_killed_push_leaves_a_valid_remote() {
    a_killed_push_leaves_a_valid_remote(TestRemote::dir());
}

#[test]
fn s3_a_killed_push_leaves_a_valid_remote() {
    a_killed_push_leaves_a_valid_remote(TestRemote::s3());
}

#[test]
fn dir_a_lazy_worker_downloads_only_what_it_loads() {
    a_lazy_worker_downloads_only_what_it_loads(TestRemote::dir());
}

#[test]
fn s3_a_lazy_worker_downloads_only_what_it_loads() {
    a_lazy_worker_downloads_only_what_it_loads(TestRemote::s3());
}

#[test]
fn dir_corrupted_remote_objects_are_refused() {
    corrupted_remote_objects_are_refused(TestRemote::dir());
}

#[test]
fn s3_corrupted_remote_objects_are_refused() {
    corrupted_remote_objects_are_refused(TestRemote::s3());
}

/// On a terminal a push shows its progress line (files, bytes, rate) on stderr; piped, or
/// with `--quiet`, it shows none. The terminal is `script`'s pseudo-terminal.
#[test]
fn progress_shows_on_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    let (path, s) = new_store(&dir, "a.mandala");
    compute(&s, 0..100, 2);
    drop(s);
    let remote = TestRemote::dir();
    remote.add_to(&path);
    let on_tty = |args: &str| common::on_tty(&path, args, &[]);
    let quiet = on_tty("push --quiet");
    assert!(quiet.contains("uploaded 4 files"), "{quiet:?}");
    assert!(!quiet.contains("files,"), "no progress line: {quiet:?}");
    for name in ["other", "third"] {
        let url = format!("file://{}/{name}", dir.path().display());
        cli(&path, &["remote", "add", name, &url]);
    }
    let shown = on_tty("push other");
    // One line for the whole push (both phases), rewritten in place, ending at 4/4.
    assert!(shown.contains("\rpush other: 4/4 files, "), "{shown:?}");
    assert!(shown.contains("/s"), "a rate: {shown:?}");
    let piped = Command::new(env!("CARGO_BIN_EXE_mandala"))
        .args(["--store", path.to_str().unwrap(), "push", "third"])
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert!(String::from_utf8(piped.stderr).unwrap().is_empty());
}

#[test]
fn remote_commands_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (path, s) = new_store(&dir, "a.mandala");
    compute(&s, 0..3, 0);
    let err = cli_fails(&path, &["push"]);
    assert!(err.contains("this store has no remotes"), "{err}");
    cli(
        &path,
        &[
            "remote",
            "add",
            "origin",
            "s3://bucket/p",
            "--endpoint",
            "http://127.0.0.1:1",
        ],
    );
    cli(
        &path,
        &["remote", "add", "share", "file:///nonexistent/share"],
    );
    let list = cli(&path, &["remote", "list"]);
    assert_eq!(
        list,
        "origin\ts3://bucket/p (endpoint http://127.0.0.1:1)\nshare\tfile:///nonexistent/share\n"
    );
    let err = cli_fails(&path, &["remote", "add", "x", "ftp://h/p"]);
    assert!(
        err.contains("s3://bucket/prefix or file:///absolute/path"),
        "{err}"
    );
    // An unreachable remote: a clear error naming the remote and URL, after bounded retries,
    // and the local store untouched.
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_mandala"))
        .args(["--store", path.to_str().unwrap(), "push", "origin"])
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "secret-never-printed")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("remote 'origin' (s3://bucket/p)"), "{err}");
    assert!(!err.contains("secret-never-printed"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(120));
    let text = std::fs::read_to_string(path.join("remotes.toml")).unwrap();
    assert!(
        !text.contains("secret-never-printed") && !text.contains("\"k\""),
        "{text}"
    );
    cli(&path, &["remote", "remove", "share"]);
    assert!(!cli(&path, &["remote", "list"]).contains("share"));
    all_hits(&Storage::open(&path).unwrap(), 0..3, 0);
}

/// Tags travel with push and pull, after what they name.
#[test]
fn dir_tags_travel_with_push_and_pull() {
    let dir = tempfile::tempdir().unwrap();
    let (a_path, a) = new_store(&dir, "a.mandala");
    let r = a.run(|| work(7)).unwrap();
    a.tag("best/work", &r).unwrap();
    let remote = TestRemote::dir();
    remote.add_to(&a_path);
    a.push("origin").unwrap();
    let (b_path, b) = new_store(&dir, "b.mandala");
    remote.add_to(&b_path);
    b.pull("origin").unwrap();
    let got = b.load_tag::<u64>("best/work").unwrap();
    assert_eq!(got.hid(), r.hid());
    assert_eq!(b.unwrap(&got).unwrap(), a.unwrap(&r).unwrap());
}
