//! Hits are lazy: a memoized call loads no value until one is unwrapped or needed by a call
//! that executes. Asserted with a backend that counts value reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mandala::{op, Backend, CallName, CallRecord, Engine, Id, MemoryBackend, Result, StoredCall};

#[op]
fn double(x: Vec<u32>) -> Vec<u32> {
    x.iter().map(|v| v * 2).collect()
}

#[op]
fn total(x: Vec<u32>) -> u64 {
    x.iter().map(|v| u64::from(*v)).sum()
}

#[derive(Clone, Default)]
struct Counting {
    inner: Arc<MemoryBackend>,
    reads: Arc<AtomicU64>,
}

impl Backend for Counting {
    fn describe(&self) -> String {
        "counting".into()
    }
    fn has_value(&self, cid: &Id) -> Result<bool> {
        self.inner.has_value(cid)
    }
    fn get_value(&self, cid: &Id) -> Result<Option<Vec<u8>>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_value(cid)
    }
    fn put_value(&self, cid: &Id, cbor: &[u8]) -> Result<()> {
        self.inner.put_value(cid, cbor)
    }
    fn list_calls(&self, key: &Id) -> Result<Vec<CallName>> {
        self.inner.list_calls(key)
    }
    fn get_call(&self, name: &CallName) -> Result<Option<CallRecord>> {
        self.inner.get_call(name)
    }
    fn put_call(&self, record: &CallRecord) -> Result<()> {
        self.inner.put_call(record)
    }
    fn all_calls(&self) -> Result<Vec<StoredCall>> {
        self.inner.all_calls()
    }
    fn call_names(&self) -> Result<Vec<CallName>> {
        self.inner.call_names()
    }
    fn all_values(&self) -> Result<Vec<Id>> {
        self.inner.all_values()
    }
    fn delete_call(&self, name: &CallName) -> Result<()> {
        self.inner.delete_call(name)
    }
    fn put_version(&self, v: &store_core::version::history::VersionRecord) -> Result<()> {
        self.inner.put_version(v)
    }
    fn all_versions(&self) -> Result<Vec<store_core::version::history::VersionRecord>> {
        self.inner.all_versions()
    }
    fn put_decision(&self, d: &store_core::version::history::Decision) -> Result<()> {
        self.inner.put_decision(d)
    }
    fn decisions(&self) -> Result<Vec<store_core::version::history::Decision>> {
        self.inner.decisions()
    }
    fn put_tag(&self, t: &store_core::format::tag::TagRecord) -> Result<()> {
        self.inner.put_tag(t)
    }
    fn tag_records(&self) -> Result<Vec<store_core::format::tag::TagRecord>> {
        self.inner.tag_records()
    }
}

#[test]
fn hits_load_nothing_until_needed() {
    let backend = Counting::default();
    let reads = backend.reads.clone();
    let first = Engine::new(Box::new(backend.clone()));
    first.run(|| total(double(vec![1, 2, 3])?)).unwrap();
    assert_eq!(
        reads.load(Ordering::SeqCst),
        0,
        "a fresh pipeline reads nothing back"
    );

    // A new engine over the same data: everything is a hit, nothing is read.
    let second = Engine::new(Box::new(backend.clone()));
    let t = second.run(|| total(double(vec![1, 2, 3])?)).unwrap();
    assert_eq!(second.stats().total.hits, 2);
    assert_eq!(reads.load(Ordering::SeqCst), 0, "hits are lazy");
    assert_eq!(second.unwrap(&t).unwrap(), 12);
    assert_eq!(
        reads.load(Ordering::SeqCst),
        1,
        "unwrap reads exactly the value asked for"
    );
    assert_eq!(second.unwrap(&t).unwrap(), 12);
    assert_eq!(reads.load(Ordering::SeqCst), 1, "and keeps it");

    // A lazy ref passed to a call that executes is loaded for it.
    let d = second.run(|| double(vec![1, 2, 3])).unwrap();
    assert!(!d.in_memory());
    let dd = second.run(|| double(&d)).unwrap();
    assert_eq!(second.stats().op("double").executed, 1);
    assert_eq!(reads.load(Ordering::SeqCst), 2);
    assert_eq!(dd.value(), Some(&vec![4, 8, 12]));
}

#[test]
fn frames_read_no_value_until_a_table_shows_values() {
    let backend = Counting::default();
    let reads = backend.reads.clone();
    let engine = Engine::new(Box::new(backend.clone()));
    engine
        .run(|| -> Result<()> {
            for i in 0..5u32 {
                total(double(vec![i, i])?)?;
            }
            Ok(())
        })
        .unwrap();
    let mut cf = mandala::ComputationFrame::from_op(&engine, "total").unwrap();
    cf.expand_all().unwrap();
    let table = cf.df(false).unwrap();
    assert_eq!(table.len(), 5);
    assert_eq!(table.columns.len(), 5, "{:?}", table.columns);
    assert_eq!(
        reads.load(Ordering::SeqCst),
        0,
        "building, expanding and tabulating a frame reads no value"
    );
    // total's input is named after the output that produced it: double's.
    let inputs = table.clone().select(&["double"]).unwrap().values().unwrap();
    assert_eq!(inputs.len(), 5);
    assert_eq!(
        reads.load(Ordering::SeqCst),
        5,
        "one read per value shown: the 5 inputs, nothing else"
    );
    let shown: std::collections::BTreeSet<Id> = table
        .rows
        .iter()
        .flatten()
        .filter_map(|cell| match cell {
            Some(mandala::Cell::Ref(hid)) => cf.cid(hid),
            _ => None,
        })
        .collect();
    assert_eq!(
        shown.len(),
        12,
        "7 distinct vectors ([i, i] and [2i, 2i] overlap) and 5 totals"
    );
    let _ = table.values().unwrap();
    assert_eq!(
        reads.load(Ordering::SeqCst),
        5 + 12,
        "the whole table: each distinct value shown, read once"
    );
}
