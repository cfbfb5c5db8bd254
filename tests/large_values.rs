//! Large numeric values (issue 10): a `Vec<f64>` kept as a loose blob is loaded a mebibyte at
//! a time — decoded from the pieces as they are decompressed, each piece hashed, the whole
//! checked before the vector is returned — so a load fills one buffer of its size, not two.
//! A damaged blob is never returned: it is reported and moved aside as any damaged value is,
//! and the next run computes the call again. Storing one goes the other way: the vector is
//! encoded a mebibyte at a time, each piece hashed and compressed into a temp file, which
//! becomes the blob once the id is known — the very file a store given the whole encoding
//! makes, so stores written either way merge by a union of files.

use std::path::PathBuf;

use mandala::{op, Backend, Storage};

/// 300 000 doubles: 2.7 MB of CBOR, a loose blob (above the pack threshold) read as a stream.
const N: u64 = 300_000;

fn expected(n: u64) -> Vec<f64> {
    (0..n)
        .map(|i| (i as f64 * 0.001).sin() * 1e3 + 0.5)
        .collect()
}

#[op]
fn signal(n: u64) -> Vec<f64> {
    expected(n)
}

#[op]
fn narrow(n: u64) -> Vec<f32> {
    expected(n).into_iter().map(|f| f as f32).collect()
}

/// A store holding `signal(N)`: its directory (kept while the handle lives), path, the
/// vector's cid and its blob's path.
fn stored_vector() -> mandala::Result<(tempfile::TempDir, PathBuf, mandala::Id, PathBuf)> {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s.mandala");
    let cid = Storage::open(&store)?.run(|| signal(N))?.cid();
    let blob = store_fs::layout::value_path(&store, &cid);
    Ok((d, store, cid, blob))
}

#[test]
fn a_large_vector_is_loaded_from_pieces_and_equals_what_was_stored() -> mandala::Result<()> {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s.mandala");
    let (cid, cid32) = {
        let storage = Storage::open(&store)?;
        let (a, b) = storage.run(|| Ok((signal(N)?, narrow(N)?)))?;
        (a.cid(), b.cid())
    };
    let blob = store_fs::layout::value_path(&store, &cid);
    assert!(blob.is_file(), "a loose blob: {}", blob.display());

    let storage = Storage::open(&store)?;
    storage.allow_new_calls(false);
    let (a, b) = storage.run(|| Ok((signal(N)?, narrow(N)?)))?;
    assert_eq!(storage.unwrap(&a)?, expected(N));
    let want32: Vec<f32> = expected(N).into_iter().map(|f| f as f32).collect();
    assert_eq!(storage.unwrap(&b)?, want32);
    assert_eq!(storage.stats().total.executed, 0);

    // The file store hands it in pieces, whose concatenation is the checked value.
    let fs = storage.fs().unwrap();
    for cid in [cid, cid32] {
        let (mut pieces, mut bytes) = (0, Vec::new());
        let streamed = fs.stream_value(&cid, &mut |p| {
            pieces += 1;
            bytes.extend_from_slice(p);
        })?;
        assert!(streamed && pieces >= 2, "{pieces} pieces");
        assert_eq!(Some(bytes), fs.get_value(&cid)?);
    }
    Ok(())
}

#[test]
fn a_damaged_large_vector_is_never_returned() -> mandala::Result<()> {
    let (_d, store, cid, blob) = stored_vector()?;
    // One byte changed in the middle of the content (the blob is raw blocks: zstd cannot tell).
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&blob, &bytes).unwrap();

    let storage = Storage::open(&store)?;
    let fs = storage.fs().unwrap();
    assert!(
        !fs.stream_value(&cid, &mut |_| {})?,
        "not streamed: damaged"
    );
    let r = storage.run(|| signal(N))?;
    let e = storage.unwrap(&r).unwrap_err().to_string();
    assert!(e.contains("corrupt") && e.contains("moved aside"), "{e}");
    assert!(!blob.exists(), "moved out of the store's objects");
    drop(storage);

    // The next run computes the call again and loads the vector.
    let storage = Storage::open(&store)?;
    let r = storage.run(|| signal(N))?;
    assert_eq!(storage.unwrap(&r)?, expected(N));
    assert_eq!(storage.stats().total.executed, 1);
    Ok(())
}

/// A loaded vector is checked by its content's BLAKE3 against its id, not by the frame's
/// XXH64 (a tenth of a large load): a blob whose checksum alone is damaged still gives the
/// exact vector, and `fsck` (which checks every byte of every file) still reports it.
#[test]
fn a_large_vector_is_checked_by_its_id_and_fsck_still_reads_the_frame_checksum(
) -> mandala::Result<()> {
    let (_d, store, cid, blob) = stored_vector()?;
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1; // the XXH64 checksum ends the frame
    bytes[last] ^= 0x01;
    std::fs::write(&blob, &bytes).unwrap();

    let storage = Storage::open(&store)?;
    let fs = storage.fs().unwrap();
    assert!(
        fs.stream_value(&cid, &mut |_| {})?,
        "streamed: its content is intact"
    );
    storage.allow_new_calls(false);
    let r = storage.run(|| signal(N))?;
    assert_eq!(storage.unwrap(&r)?, expected(N));
    assert_eq!(storage.stats().total.executed, 0);
    let report = storage.verify()?;
    let path = blob.display().to_string();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.to_string().contains(&path)),
        "{:?}",
        report.problems
    );
    Ok(())
}

/// A FIFO where a large vector's blob belongs is not read as a stream (nothing hangs): the
/// load takes the path every value takes, which heals the call by computing it again.
#[cfg(unix)]
#[test]
fn a_fifo_where_a_large_vector_belongs_is_met_at_once() -> mandala::Result<()> {
    let (_d, store, cid, blob) = stored_vector()?;
    std::fs::remove_file(&blob).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&blob)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let storage = Storage::open(&store)?;
    assert!(!storage.fs().unwrap().stream_value(&cid, &mut |_| {})?);
    let r = storage.run(|| signal(N))?;
    assert_eq!(storage.unwrap(&r)?, expected(N));
    assert_eq!(storage.stats().total.healed, 1);
    Ok(())
}

#[test]
fn a_large_vector_is_stored_in_one_pass_as_the_file_its_whole_encoding_makes() -> mandala::Result<()>
{
    let d = tempfile::tempdir().unwrap();
    let (store, whole) = (d.path().join("s.mandala"), d.path().join("whole.mandala"));
    let storage = Storage::open(&store)?;
    let (a, b) = storage.run(|| Ok((signal(N)?, narrow(N)?)))?;
    let want32: Vec<f32> = expected(N).into_iter().map(|f| f as f32).collect();
    // The same ids as the whole encodings', and the same ids outside a call.
    let encoded = (
        store_core::format::cbor::encode_value(&expected(N)).unwrap(),
        store_core::format::cbor::encode_value(&want32).unwrap(),
    );
    assert_eq!(a.cid(), mandala::Id::hash(mandala::Kind::Value, &encoded.0));
    assert_eq!(b.cid(), mandala::Id::hash(mandala::Kind::Value, &encoded.1));
    assert_eq!(storage.save_value(&expected(N))?, a.cid());
    assert_eq!(storage.save_value(&want32)?, b.cid());
    // Byte for byte the blobs a store given the whole encodings writes.
    let other = store_fs::FsBackend::open(&whole)?;
    other.put_value(&a.cid(), &encoded.0)?;
    other.put_value(&b.cid(), &encoded.1)?;
    for cid in [a.cid(), b.cid()] {
        let file = |root: &std::path::Path| {
            std::fs::read(store_fs::layout::value_path(root, &cid)).unwrap()
        };
        assert_eq!(file(&store), file(&whole), "value {cid}");
    }
    let temps = store_fs::write::stray_temp_files(&store.join("tmp")).unwrap();
    assert!(temps.is_empty(), "{temps:?}");
    drop(storage);

    // Read back in a new handle, without computing anything.
    let storage = Storage::open(&store)?;
    storage.allow_new_calls(false);
    let (a, b) = storage.run(|| Ok((signal(N)?, narrow(N)?)))?;
    assert_eq!(storage.unwrap(&a)?, expected(N));
    assert_eq!(storage.unwrap(&b)?, want32);
    assert_eq!(storage.stats().total.executed, 0);
    Ok(())
}

static SUMMED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[op]
fn total(v: Vec<f64>) -> f64 {
    SUMMED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    v.iter().sum()
}

#[op]
fn largest(v: Vec<f64>) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

/// The store where [`drop_input_while_running`] removes the input it is given.
static DOOMED_STORE: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// While it runs, deletes every stored call and collects the store (as a `gc` in another
/// process would), which removes the input it was given.
#[op]
fn drop_input_while_running(v: Vec<f64>) -> usize {
    let store = DOOMED_STORE.lock().unwrap().clone().unwrap();
    let other = Storage::open(&store).unwrap();
    let names = other.fs().unwrap().call_names().unwrap();
    other.delete_calls(&names).unwrap();
    let removed = other
        .fs()
        .unwrap()
        .gc(false, std::time::Duration::ZERO)
        .unwrap();
    assert!(!removed.values.is_empty());
    v.len()
}

#[test]
fn a_large_argument_is_hashed_in_pieces_and_written_only_when_its_call_runs() -> mandala::Result<()>
{
    let d = tempfile::tempdir().unwrap();
    let (store, whole) = (d.path().join("s.mandala"), d.path().join("whole.mandala"));
    let v = expected(N);
    let encoded = store_core::format::cbor::encode_value(&v).unwrap();
    let cid = mandala::Id::hash(mandala::Kind::Value, &encoded);
    let blob = store_fs::layout::value_path(&store, &cid);
    let before = SUMMED.load(std::sync::atomic::Ordering::SeqCst);
    {
        let storage = Storage::open(&store)?;
        let r = storage.run(|| total(v.clone()))?;
        assert_eq!(storage.unwrap(&r)?, v.iter().sum::<f64>());
        let call = storage.get_ref_creator(&r)?.expect("stored");
        assert_eq!(call.record.inputs[0].cid, cid);
        // Written as its call ran: the file a store given the whole encoding writes.
        let other = store_fs::FsBackend::open(&whole)?;
        other.put_value(&cid, &encoded)?;
        let written = std::fs::read(&blob).unwrap();
        assert_eq!(
            written,
            std::fs::read(store_fs::layout::value_path(&whole, &cid)).unwrap()
        );
        // Another op on the same argument: the stored value is kept as it is.
        let stamp = std::fs::metadata(&blob).unwrap().modified().unwrap();
        storage.run(|| largest(v.clone()))?;
        assert_eq!(std::fs::metadata(&blob).unwrap().modified().unwrap(), stamp);
        let temps = store_fs::write::stray_temp_files(&store.join("tmp")).unwrap();
        assert!(temps.is_empty(), "{temps:?}");
    }
    assert_eq!(SUMMED.load(std::sync::atomic::Ordering::SeqCst), before + 1);

    // A new handle: a hit, found by the hash alone.
    let storage = Storage::open(&store)?;
    storage.allow_new_calls(false);
    let r = storage.run(|| total(v.clone()))?;
    assert_eq!(storage.unwrap(&r)?, v.iter().sum::<f64>());
    assert_eq!(storage.stats().total.executed, 0);
    assert_eq!(SUMMED.load(std::sync::atomic::Ordering::SeqCst), before + 1);
    assert!(storage.verify()?.is_clean());

    // The same in memory (a backend that takes values whole).
    let memory = Storage::in_memory();
    memory.run(|| total(v.clone()))?;
    memory.run(|| total(v.clone()))?;
    assert_eq!(memory.stats().total.executed, 1);
    assert_eq!(memory.load_value::<Vec<f64>>(&cid)?, v);
    Ok(())
}

#[test]
fn a_large_argument_removed_while_its_call_runs_fails_the_call_clearly() -> mandala::Result<()> {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s.mandala");
    *DOOMED_STORE.lock().unwrap() = Some(store.clone());
    let v = expected(N);
    let storage = Storage::open(&store)?;
    // The argument is stored (by another call) when the next call begins …
    storage.run(|| largest(v.clone()))?;
    storage.flush()?; // sealed into a pack, where a record can be deleted
                      // … and removed while that call runs: the call is not stored, and says why.
    let e = storage
        .run(|| drop_input_while_running(v.clone()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("op 'drop_input_while_running': argument 'v'")
            && e.contains("removed (by gc) before it was stored")
            && e.contains("run it again"),
        "{e}"
    );
    drop(storage);
    let storage = Storage::open(&store)?;
    assert!(storage.verify()?.is_clean());
    assert_eq!(storage.fs().unwrap().call_names()?.len(), 0);
    // Run again, it stores the call and its argument.
    storage.run(|| largest(v.clone()))?;
    assert_eq!(storage.fs().unwrap().call_names()?.len(), 1);
    assert!(storage.verify()?.is_clean());
    Ok(())
}
