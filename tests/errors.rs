//! Errors by area (issue 9, item 7): each failure comes as the variant of its area — store,
//! format, call, versioning, frame — inside `mandala::Error`, and absence is `Ok(None)`, never
//! an error to be recognised by its message.

use mandala::{
    op, Backend, CallError, CallName, Error, FormatError, FrameError, Id, MemoryBackend, Storage,
    StoreError, Versioning, VersioningError,
};

#[op]
fn halve(x: u64) -> u64 {
    x / 2
}

#[test]
fn turning_versioning_on_twice_differently_is_a_versioning_error() {
    let storage = Storage::in_memory()
        .versioned(Versioning::tracking(["errors::"]))
        .unwrap();
    // The same settings again: fine.
    storage
        .enable_versioning(Versioning::tracking(["errors::"]))
        .unwrap();
    let e = storage
        .enable_versioning(Versioning::tracking(["other::"]))
        .unwrap_err();
    assert!(
        matches!(&e, Error::Versioning(VersioningError::AlreadyOn { store, .. }) if store == "in-memory"),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("versioning is already on for in-memory with"),
        "{e}"
    );
}

#[test]
fn an_absent_call_is_none_in_every_backend() {
    let d = tempfile::tempdir().unwrap();
    let fs = store_fs::FsBackend::open(&d.path().join("s.mandala")).unwrap();
    let memory = MemoryBackend::new();
    let backends: [&dyn Backend; 2] = [&fs, &memory];
    for b in backends {
        let name = CallName {
            key: Id([1; 32]),
            hid: Id([2; 32]),
            rid: Id([3; 32]),
        };
        assert!(b.get_call(&name).unwrap().is_none(), "{}", b.describe());
        assert!(b.get_stored_call(&name).unwrap().is_none());
        assert!(b.get_value(&name.key).unwrap().is_none());
        assert_eq!(b.get_stored_calls(&[name]).unwrap(), [None]);
    }
}

#[test]
fn each_area_has_its_own_variants() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s.mandala");
    let storage = Storage::open(&store).unwrap();
    let y = storage.run(|| halve(8)).unwrap();

    // Format: a value read as the wrong type.
    let e = storage.load_value::<String>(&y.cid()).unwrap_err();
    assert!(
        matches!(e, Error::Format(FormatError::Decode { .. })),
        "{e:?}"
    );
    // Format: an id that does not parse.
    let e = storage.diff("xyz", "abc").unwrap_err();
    assert!(matches!(e, Error::Format(FormatError::BadId(_))), "{e:?}");
    // Versioning: no such version.
    let e = storage.diff("abcd", "abce").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Versioning(VersioningError::NotFound {
                what: "version",
                ..
            })
        ),
        "{e:?}"
    );
    // Call: a new call where none is allowed.
    storage.allow_new_calls(false);
    let e = storage.run(|| halve(9)).unwrap_err();
    assert!(
        matches!(e, Error::Call(CallError::NewCallNotAllowed { .. })),
        "{e:?}"
    );
    // Frame: a column the table does not have.
    let table = storage.cf("halve").unwrap().df(false).unwrap();
    let e = table.column::<u64>("nope").unwrap_err();
    assert!(
        matches!(e, Error::Frame(FrameError::NoSuchName { .. })),
        "{e:?}"
    );
    // Store: a damaged value, with its path: the pack that holds it (sealed when the store
    // is dropped), every byte after its header flipped.
    drop(table);
    drop(storage);
    let path = std::fs::read_dir(store.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "pack"))
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[16..].iter_mut().for_each(|b| *b ^= 0xff);
    std::fs::write(&path, bytes).unwrap();
    let fresh = Storage::open(&store).unwrap();
    let e = fresh.load_value::<u64>(&y.cid()).unwrap_err();
    assert!(
        matches!(e, Error::Store(StoreError::Corrupt { .. })),
        "{e:?}"
    );
    assert_eq!(e.path(), Some(path.as_path()));
}

/// A `main` returning `mandala::Result` prints the error as a sentence, not Rust's Debug form.
#[test]
fn errors_debug_print_as_their_message() {
    let e = mandala::Storage::open("/dev/null/nope").err().unwrap();
    assert_eq!(format!("{e:?}"), e.to_string());
    assert!(!format!("{e:?}").contains("Store("), "{e:?}");
}
