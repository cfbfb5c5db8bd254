//! Claims across processes (`OpenOptions::claims`): processes sharing a store compute each new
//! call once — the others wait for its result — and a claim whose process was killed is taken
//! over at once. Children are this test binary run again on the `#[ignore]`d helper `child`.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use mandala::{op, OpenOptions, Storage};

mod common;

/// Sleeps `ms`, appends a line to `$MANDALA_CHILD_LOG` (one per execution, across processes).
#[op]
fn slow_square(x: u64, ms: u64) -> u64 {
    if let Some(log) = std::env::var_os("MANDALA_CHILD_LOG") {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)
            .unwrap();
        f.write_all(format!("{x}\n").as_bytes()).unwrap(); // one write: lines never interleave
    }
    std::thread::sleep(Duration::from_millis(ms));
    x * x
}

fn open(store: &Path, lease: Option<Duration>) -> Storage {
    Storage::open_with(
        store,
        OpenOptions {
            claims: lease,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
#[ignore = "helper: runs inside child processes started by the other tests"]
fn child() {
    let store = std::env::var("MANDALA_CHILD_STORE").expect("run by a parent test");
    let job = std::env::var("MANDALA_CHILD_JOB").unwrap();
    let lease = std::env::var("MANDALA_CHILD_LEASE_MS")
        .ok()
        .map(|ms| Duration::from_millis(ms.parse().unwrap()));
    let storage = open(Path::new(&store), lease);
    let w: Vec<u64> = job.split_whitespace().map(|n| n.parse().unwrap()).collect();
    let (from, to, ms) = (w[0], w[1], w[2]);
    storage
        .run(|| (from..to).try_for_each(|x| slow_square(x, ms).map(|_| ())))
        .unwrap();
    let t = storage.stats().total;
    println!("STATS executed={} waited={}", t.executed, t.waited);
}

fn spawn(store: &Path, log: &Path, job: &str, lease_ms: Option<u64>) -> std::process::Child {
    let lease = lease_ms.map(|l| l.to_string()).unwrap_or_default();
    let mut env: Vec<(&str, &std::ffi::OsStr)> = vec![
        ("MANDALA_CHILD_STORE", store.as_os_str()),
        ("MANDALA_CHILD_LOG", log.as_os_str()),
        ("MANDALA_CHILD_JOB", job.as_ref()),
    ];
    if lease_ms.is_some() {
        env.push(("MANDALA_CHILD_LEASE_MS", lease.as_ref()));
    }
    common::helper_process(&env).spawn().unwrap()
}

fn executions(log: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    v.sort();
    v
}

/// 4 processes over overlapping ranges, claims on: each call computed once, whoever got there
/// first; the others waited for it.
#[test]
fn four_processes_with_claims_compute_each_call_once() {
    let d = tempfile::tempdir().unwrap();
    let (store, log) = (d.path().join("s.mandala"), d.path().join("runs.log"));
    drop(open(&store, None)); // created once, before the children race
    let jobs = ["0 8 40", "4 12 40", "0 12 40", "6 10 40"];
    let children: Vec<_> = jobs
        .iter()
        .map(|j| spawn(&store, &log, j, Some(60_000)))
        .collect();
    let mut waited = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout.lines().find(|l| l.contains("STATS ")).unwrap();
        waited += line
            .split("waited=")
            .nth(1)
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap();
    }
    assert_eq!(
        executions(&log),
        (0..12).collect::<Vec<_>>(),
        "each call once"
    );
    assert!(waited > 0, "some process waited for another's call");
    // Every call is stored and no claim is left behind.
    let storage = open(&store, None);
    storage.allow_new_calls(false);
    storage
        .run(|| (0..12).try_for_each(|x| slow_square(x, 40).map(|_| ())))
        .unwrap();
    let claims = store.join("tmp/claims");
    assert_eq!(
        std::fs::read_dir(&claims).unwrap().count(),
        0,
        "claims released"
    );
}

/// A process killed while it holds a claim delays the others by no more than the takeover: the
/// claim of a dead process (same host) is taken over at once, long before its lease ends.
#[test]
fn a_killed_holder_is_taken_over_at_once() {
    let d = tempfile::tempdir().unwrap();
    let (store, log) = (d.path().join("s.mandala"), d.path().join("runs.log"));
    drop(open(&store, None));
    let mut holder = spawn(&store, &log, "7 8 5000", Some(600_000));
    // Wait until it holds the claim (its execution is logged), then kill it.
    let t = Instant::now();
    while executions(&log).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the holder never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();
    assert_eq!(
        std::fs::read_dir(store.join("tmp/claims")).unwrap().count(),
        1,
        "the dead process's claim is still there"
    );
    let started = Instant::now();
    let taker = spawn(&store, &log, "7 8 100", Some(600_000));
    let out = taker.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "taken over at once, not after the 10-minute lease: {:?}",
        started.elapsed()
    );
    assert_eq!(
        executions(&log),
        [7, 7],
        "computed by the holder (killed) and the taker"
    );
}

/// Without claims, nothing changes: no claim files.
#[test]
fn claims_are_off_by_default() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s.mandala");
    let storage = open(&store, None);
    storage.run(|| slow_square(3, 0)).unwrap();
    assert!(!store.join("tmp/claims").exists());
}

/// A claim held by a process on another machine is waited for until its lease expires, then
/// taken over.
#[test]
fn an_expired_claim_is_taken_over() {
    use mandala::{Id, Kind, Slot};
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s.mandala");
    let storage = open(&store, Some(Duration::from_secs(60)));
    // The call key of slow_square(9, 0), as docs/FORMAT.md §3 defines it.
    let slot = |name: &str, v: u64| {
        let cid = Id::hash(Kind::Value, &mandala_cbor(v));
        Slot {
            name: name.into(),
            hid: store_core::format::record::source_hid(&cid),
            cid,
        }
    };
    let key = store_core::format::record::call_key("slow_square", &[slot("ms", 0), slot("x", 9)]);
    let claims = store.join("tmp/claims");
    std::fs::create_dir_all(&claims).unwrap();
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 400;
    std::fs::write(
        claims.join(format!("{key}.claim")),
        format!("host another-machine\npid 1\nexpires {expires}\n"),
    )
    .unwrap();
    let t = Instant::now();
    let y = storage.run(|| slow_square(9, 0)).unwrap();
    assert_eq!(storage.unwrap(&y).unwrap(), 81);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "it waited for the lease: {:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(storage.stats().total.executed, 1);
}

/// The canonical CBOR of an unsigned integer below 24 or 256 (the test's values).
fn mandala_cbor(v: u64) -> Vec<u8> {
    if v < 24 {
        vec![v as u8]
    } else {
        vec![0x18, v as u8]
    }
}

/// A claim file that holds no complete record yet belongs to a process that has just created
/// it (it fills it next): it is waited for, not taken over — taking it over made two processes
/// compute one call. Left that way by a killed process, it is taken over once 5 s old.
#[test]
fn a_claim_still_being_written_is_not_taken_over() {
    use mandala::{Backend, Id, Kind};
    use store_core::backend::CallClaim;
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s.mandala");
    let storage = open(&store, Some(Duration::from_secs(60)));
    let fs = storage.fs().unwrap();
    let key = Id::hash(Kind::Value, b"a call key");
    let claims = store.join("tmp/claims");
    std::fs::create_dir_all(&claims).unwrap();
    let claim = claims.join(format!("{key}.claim"));
    let file = std::fs::File::create(&claim).unwrap();
    assert!(
        matches!(fs.claim_call(&key).unwrap(), CallClaim::HeldElsewhere(_)),
        "a fresh empty claim is its holder's"
    );
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    assert!(
        matches!(fs.claim_call(&key).unwrap(), CallClaim::Acquired),
        "an old empty claim is a killed process's"
    );
    assert!(std::fs::read_to_string(&claim)
        .unwrap()
        .contains(&format!("pid {}", std::process::id())));
    fs.release_call(&key).unwrap();
    assert!(!claim.exists());
}
