//! Tags: names for refs, as git's tags — written once per (name, target), kept by gc, merged
//! by a union of files with conflicts reported, and usable wherever a hash prefix is.

use mandala::{op, Error, Storage, StoreError};

mod common;

#[op]
fn score(seed: u64) -> f64 {
    seed as f64 / 10.0
}

#[op]
fn double(x: f64) -> f64 {
    x * 2.0
}

fn tag_error(e: Error) -> (String, String) {
    match e {
        Error::Store(StoreError::Tag { name, reason }) => (name, reason),
        other => panic!("not a tag error: {other}"),
    }
}

#[test]
fn a_tag_names_a_ref_until_it_is_re_pointed() -> mandala::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.mandala");
    let storage = Storage::open(&path)?;
    let (a, b) = storage.run(|| Ok((score(1)?, score(2)?)))?;
    storage.tag("paper/fig3", &a)?;
    storage.tag("paper/fig3", &a)?; // the same target again: nothing new
    let (name, reason) = tag_error(storage.tag("paper/fig3", &b).unwrap_err());
    assert_eq!(name, "paper/fig3");
    assert!(
        reason.starts_with(&format!("it names ref {} already", a.hid().short(12))),
        "{reason}"
    );
    assert_eq!(storage.load_tag::<f64>("paper/fig3")?.hid(), a.hid());
    storage.retag("paper/fig3", &b)?;
    drop(storage);
    // A new handle (a new run) finds it by name.
    let storage = Storage::open(&path)?;
    let r = storage.load_tag::<f64>("paper/fig3")?;
    assert_eq!((r.hid(), storage.unwrap(&r)?), (b.hid(), 0.2));
    let tags = storage.tags()?;
    assert_eq!(tags.len(), 1);
    assert!(
        tags[0].conflicts.is_empty(),
        "re-pointing is not a conflict"
    );
    // Two records on disk: one per target, each written once.
    let files: Vec<_> = std::fs::read_dir(path.join("refs/tags")).unwrap().collect();
    assert_eq!(files.len(), 2);
    // Bad names and unknown tags say what is wrong.
    let (_, reason) = tag_error(storage.tag("../x", &r).unwrap_err());
    assert_eq!(reason, "no part of a tag name is empty or starts with '.'");
    let (_, reason) = tag_error(storage.load_tag::<f64>("nope").unwrap_err());
    assert_eq!(reason, "no such tag; the store has: paper/fig3");
    let (_, reason) = tag_error(
        storage
            .tag("loose", &mandala::Ref::detached(1.5))
            .unwrap_err(),
    );
    assert_eq!(
        reason,
        "the ref is not in the store: tag an op's output or input"
    );
    Ok(())
}

#[test]
fn gc_keeps_what_a_tag_names_and_frames_start_from_tags() -> mandala::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path().join("s.mandala"))?;
    let d = storage.run(|| double(score(3)?))?;
    storage.tag("best", &d)?;
    let mut cf = storage.cf_from_tags(&["best"])?;
    cf.expand_back(None, true)?;
    let table = cf.df(false)?;
    assert_eq!(table.column::<u64>("seed")?, [Some(3)]);
    assert_eq!(table.column::<f64>("best")?, [Some(0.6)]);
    // Deleting the calls that made it leaves the tagged value to gc's care: kept.
    storage.cf("score")?.delete_calls()?;
    let removed = storage.fs().unwrap().gc(false, std::time::Duration::ZERO)?;
    assert!(!removed.values.is_empty(), "score's output went");
    let again = storage.load_tag::<f64>("best")?;
    assert_eq!(storage.unwrap(&again)?, 0.6);
    let report = storage.verify()?;
    assert!(report.is_clean(), "{:#?}", report.problems);
    Ok(())
}

#[test]
fn merged_stores_keep_both_targets_and_report_the_conflict() -> mandala::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, m) = (
        dir.path().join("a.mandala"),
        dir.path().join("b.mandala"),
        dir.path().join("m.mandala"),
    );
    for (path, seed) in [(&a, 1), (&b, 2)] {
        let s = Storage::open(path)?;
        let r = s.run(|| score(seed))?;
        s.tag("result", &r)?;
        s.tag(&format!("only-{seed}"), &r)?;
    }
    for src in [&a, &b] {
        common::rsync_into(src, &m);
    }
    let storage = Storage::open(&m)?;
    // A new handle sees the value behind a tag in a pack it never looked at.
    let first = storage.find_tag("only-1")?.unwrap();
    assert!(storage.backend().has_value(&first.current.cid)?);
    let tags = storage.tags()?;
    let names: Vec<&str> = tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["only-1", "only-2", "result"]);
    assert_eq!(
        tags[2].conflicts.len(),
        1,
        "two stores pointed 'result' at different refs"
    );
    let report = storage.verify()?;
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert!(
        report.warnings.iter().any(|w| w
            .what
            .starts_with("tag 'result' was pointed at different refs")),
        "{:#?}",
        report.warnings
    );
    // Re-pointing it resolves the conflict.
    let r = storage.load_tag::<f64>("only-1")?;
    storage.retag("result", &r)?;
    assert!(storage.tags()?[2].conflicts.is_empty());
    assert_eq!(storage.load_tag::<f64>("result")?.hid(), r.hid());
    Ok(())
}

#[op]
fn many(n: u64) -> mandala::MList<u64> {
    (0..n).collect()
}

/// gc keeps the elements of a tagged collection whose shape is a loose file (large), and a
/// large tagged value that is no collection, read only as far as its first bytes.
#[test]
fn gc_keeps_a_large_tagged_collection_and_its_elements() -> mandala::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path().join("s.mandala"))?;
    let list = storage.run(|| many(3000))?; // a shape of ~100 KB: a loose file
    storage.tag("big/list", &list)?;
    storage.cf("many")?.delete_calls()?;
    storage.fs().unwrap().gc(false, std::time::Duration::ZERO)?;
    let again = storage.load_tag::<mandala::MList<u64>>("big/list")?;
    assert_eq!(storage.unwrap(&again)?, (0..3000).collect::<Vec<_>>());
    let report = storage.verify()?;
    assert!(report.is_clean(), "{:#?}", report.problems);
    Ok(())
}
