//! Collections stored per element (`MList`, `MDict`): mandala's `test_lists` translated, dict
//! inputs and outputs, element reuse across handles and processes, merges of stores that built
//! overlapping lists, and what is on disk.

use std::collections::{BTreeMap, HashMap};

use mandala::{op, MDict, MList, Ref, Storage};

mod common;

fn executed(storage: &Storage, op: &str) -> u64 {
    storage.stats().op(op).executed
}

#[op]
fn get_primes(n: u64) -> MList<u64> {
    (2..n).filter(|k| (2..*k).all(|d| k % d != 0)).collect()
}

#[op]
fn sum_nums(nums: MList<u64>) -> u64 {
    nums.iter().sum()
}

#[op]
fn inc(x: u64) -> u64 {
    x + 1
}

#[op]
fn add_one_each(nums: MList<u64>) -> MList<u64> {
    nums.iter().map(|x| x + 1).collect()
}

/// mandala's `test_lists`: primes below 10 → 4 elements; indexing, slicing and sums over
/// overlapping slices of an output list; a list-in/list-out op.
#[test]
fn test_lists() -> mandala::Result<()> {
    let storage = Storage::in_memory();
    let primes = storage.run(|| get_primes(10))?;
    assert_eq!(primes.len(), 4);
    assert_eq!(storage.unwrap(&primes)?, vec![2, 3, 5, 7]);
    assert_eq!(storage.unwrap(&primes[0])?, 2);
    assert_eq!(storage.unwrap(&primes[3])?, 7);
    assert_eq!(storage.unwrap(primes.get(1).unwrap())?, 3);
    assert!(primes.get(4).is_none());

    // Sums over overlapping slices: each slice is a new list of the same element refs.
    let (a, b, c) = storage.run(|| {
        Ok::<_, mandala::Error>((
            sum_nums(&primes[..2])?,
            sum_nums(&primes[1..])?,
            sum_nums(&primes[..])?,
        ))
    })?;
    assert_eq!(
        (
            storage.unwrap(&a)?,
            storage.unwrap(&b)?,
            storage.unwrap(&c)?
        ),
        (5, 15, 17)
    );
    assert_eq!(executed(&storage, "sum_nums"), 3);
    // The same slices again: all hits.
    storage.run(|| sum_nums(&primes[..2]))?;
    assert_eq!(storage.stats().op("sum_nums").hits, 1);
    // The list ref itself has the content of `[..]` under another history: reused.
    storage.run(|| sum_nums(primes.clone()))?;
    assert_eq!(executed(&storage, "sum_nums"), 3);
    assert_eq!(storage.stats().op("sum_nums").reused, 1);

    // The elements keep their history: each is element i of get_primes(10)'s output.
    let creator = storage
        .get_ref_creator(&primes[2])?
        .expect("an element has a creator");
    assert_eq!(creator.record.op, "__list_getitem__");
    let list_input = &creator
        .record
        .inputs
        .iter()
        .find(|s| s.name == "list")
        .unwrap();
    assert_eq!(list_input.hid, primes.hid());

    // List in, list out.
    let more = storage.run(|| add_one_each(&primes))?;
    assert_eq!(storage.unwrap(&more)?, vec![3, 4, 6, 8]);
    assert_eq!(storage.unwrap(&more[1])?, 4);
    let again = storage.run(|| add_one_each(&primes))?;
    assert_eq!(executed(&storage, "add_one_each"), 1);
    assert_eq!(again.hid(), more.hid());
    assert_eq!(
        again[2].hid(),
        more[2].hid(),
        "element refs of a hit have the same ids"
    );
    assert_eq!(storage.unwrap(&again)?, vec![3, 4, 6, 8]);
    Ok(())
}

#[test]
fn a_list_argument_accepts_values_refs_and_slices() -> mandala::Result<()> {
    let storage = Storage::in_memory();
    let s = storage.run(|| sum_nums(vec![1, 2, 3]))?;
    assert_eq!(storage.unwrap(&s)?, 6);
    let ones: Vec<Ref<u64>> = storage.run(|| (0..3).map(inc).collect())?;
    // The same content by another route: refs whose values are 1, 2, 3.
    let t = storage.run(|| sum_nums(ones.clone()))?;
    assert_eq!(storage.unwrap(&t)?, 6);
    assert_eq!(
        executed(&storage, "sum_nums"),
        1,
        "same content: reused, not executed"
    );
    assert_eq!(storage.stats().op("sum_nums").reused, 1);
    assert_ne!(t.hid(), s.hid(), "another history");
    // Its list records the element histories: the make-list call's inputs are inc's outputs.
    let list_hid = storage
        .get_ref_creator(&t)?
        .unwrap()
        .record
        .inputs
        .iter()
        .find(|i| i.name == "nums")
        .unwrap()
        .hid;
    let make = storage
        .creator_of(&list_hid)?
        .expect("the list was built by a call");
    assert_eq!(make.record.op, "__make_list__");
    let names: Vec<&str> = make.record.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["elts_0", "elts_1", "elts_2"]);
    for (i, r) in ones.iter().enumerate() {
        assert_eq!(make.record.inputs[i].hid, r.hid());
    }
    // A slice of refs and a `&Vec<Ref>`.
    storage.run(|| sum_nums(&ones[1..]))?;
    storage.run(|| sum_nums(&ones))?;
    assert_eq!(
        executed(&storage, "sum_nums"),
        2,
        "only [2, 3] is new content"
    );
    Ok(())
}

#[op]
fn word_lengths(words: MList<String>) -> MDict<u64> {
    words.iter().map(|w| (w.clone(), w.len() as u64)).collect()
}

#[op]
fn total_length(lengths: MDict<u64>) -> u64 {
    lengths.iter().map(|(_, n)| n).sum()
}

#[test]
fn dicts_in_and_out() -> mandala::Result<()> {
    let storage = Storage::in_memory();
    let words: Vec<String> = ["pear", "fig", "apple"].map(String::from).to_vec();
    let lengths = storage.run(|| word_lengths(words.clone()))?;
    assert_eq!(lengths.len(), 3);
    assert_eq!(lengths.keys().collect::<Vec<_>>(), ["apple", "fig", "pear"]);
    assert_eq!(storage.unwrap(&lengths["fig"])?, 3);
    assert!(lengths.get("kiwi").is_none());
    assert_eq!(storage.unwrap(lengths.get("pear").unwrap())?, 4);
    let creator = storage.get_ref_creator(&lengths["pear"])?.unwrap();
    assert_eq!(creator.record.op, "__dict_getitem__");
    let plain: BTreeMap<String, u64> = storage.unwrap(&lengths)?;
    assert_eq!(
        plain.into_iter().collect::<Vec<_>>(),
        [
            ("apple".to_string(), 5),
            ("fig".to_string(), 3),
            ("pear".to_string(), 4)
        ]
    );

    let total = storage.run(|| total_length(&lengths))?;
    assert_eq!(storage.unwrap(&total)?, 12);
    // A HashMap of the same content, in any order, is the same content: reused.
    let map: HashMap<String, u64> = [("pear", 4), ("apple", 5), ("fig", 3)]
        .map(|(k, v)| (k.to_string(), v))
        .into();
    storage.run(|| total_length(map))?;
    assert_eq!(executed(&storage, "total_length"), 1);
    // A dict of element refs taken from the output keeps their histories.
    let some: BTreeMap<String, Ref<u64>> = lengths
        .iter()
        .filter(|(k, _)| *k != "fig")
        .map(|(k, r)| (k.to_string(), r.clone()))
        .collect();
    let part = storage.run(|| total_length(some))?;
    assert_eq!(storage.unwrap(&part)?, 9);
    let make_hid = storage.get_ref_creator(&part)?.unwrap().record.inputs[0].hid;
    let make = storage.creator_of(&make_hid)?.unwrap();
    assert_eq!(make.record.op, "__make_dict__");
    let keys: Vec<&str> = make.record.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(keys, ["apple", "pear"]);
    assert_eq!(make.record.inputs[0].hid, lengths["apple"].hid());
    Ok(())
}

#[op]
fn chunk_sums(data: Vec<u64>, size: usize) -> MList<Vec<u64>> {
    data.chunks(size).map(|c| c.to_vec()).collect()
}

#[test]
fn overlapping_lists_store_each_element_once() -> mandala::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.mandala");
    let storage = Storage::open(&path)?;
    // 100 distinct elements of ~800 bytes each, then a list sharing 99 of them.
    let big = |i: u64| -> Vec<u64> { (0..100).map(|k| k * 1_000_003 + i).collect() };
    let first: Vec<Vec<u64>> = (0..100).map(big).collect();
    let mut second = first.clone();
    second[0] = big(1000);
    storage.run(|| sum_lens(first.clone()))?;
    storage.flush()?;
    let before = store_bytes(&path);
    storage.run(|| sum_lens(second.clone()))?;
    storage.flush()?;
    let grown = store_bytes(&path) - before;
    // A copy of the list would add ~100 × 800 bytes of content; per element it adds one
    // element, one shape of 100 ids and two records.
    assert!(
        grown < 20_000,
        "the second list added {grown} bytes: elements were stored again"
    );
    assert_eq!(executed(&storage, "sum_lens"), 2);
    let report = storage.verify()?;
    assert!(report.is_clean(), "{:#?}", report.problems);
    Ok(())
}

#[op]
fn sum_lens(chunks: MList<Vec<u64>>) -> usize {
    chunks.iter().map(Vec::len).sum()
}

fn store_bytes(path: &std::path::Path) -> u64 {
    walk(path)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

fn walk(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(path).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn chunks_of_a_list_are_hits_in_a_new_handle() -> mandala::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.mandala");
    let data: Vec<u64> = (0..10).collect();
    let first = {
        let storage = Storage::open(&path)?;
        let chunks = storage.run(|| chunk_sums(data.clone(), 3))?;
        let sums: Vec<Ref<u64>> = storage.run(|| chunks.iter().map(total).collect())?;
        assert_eq!(executed(&storage, "total"), 4);
        storage.unwrap(&sums[3])?
    };
    let storage = Storage::open(&path)?;
    let chunks = storage.run(|| chunk_sums(data.clone(), 3))?;
    assert_eq!(executed(&storage, "chunk_sums"), 0);
    assert!(!chunks[0].in_memory(), "element refs of a hit are lazy");
    let sums: Vec<Ref<u64>> = storage.run(|| chunks.iter().map(total).collect())?;
    assert_eq!(
        executed(&storage, "total"),
        0,
        "every chunk's call is a hit"
    );
    assert_eq!(storage.unwrap(&sums[3])?, first);
    assert_eq!(storage.unwrap(&chunks[3])?, vec![9]);
    let report = storage.verify()?;
    assert!(report.is_clean(), "{:#?}", report.problems);
    Ok(())
}

#[op]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

#[test]
fn ops_run_outside_a_context_with_collections() -> mandala::Result<()> {
    let primes = get_primes(10)?;
    assert_eq!(primes.len(), 4);
    assert_eq!(mandala::unwrap(&primes)?, vec![2, 3, 5, 7]);
    let s = sum_nums(&primes[1..3])?;
    assert_eq!(mandala::unwrap(&s)?, 8);
    Ok(())
}

#[test]
fn a_plain_vec_stays_one_opaque_value() -> mandala::Result<()> {
    let storage = Storage::in_memory();
    let t = storage.run(|| total(vec![1, 2, 3]))?;
    let call = storage.get_ref_creator(&t)?.unwrap();
    let input = &call.record.inputs[0];
    assert!(
        storage.creator_of(&input.hid)?.is_none(),
        "a source value, no make-list call"
    );
    Ok(())
}

static PROCESS_RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[op]
fn split(data: Vec<i64>, k: usize) -> MList<Vec<i64>> {
    data.chunks(k).map(|c| c.to_vec()).collect()
}

#[op]
fn process(chunk: Vec<i64>) -> i64 {
    PROCESS_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    chunk.iter().map(|x| x * x).sum()
}

#[op]
fn mean(xs: MList<i64>) -> i64 {
    xs.iter().sum::<i64>() / xs.len() as i64
}

fn pipeline(storage: &Storage, data: &[i64]) -> mandala::Result<Ref<i64>> {
    storage.run(|| {
        let chunks = split(data.to_vec(), 2)?;
        let results: Vec<Ref<i64>> = chunks.iter().map(process).collect::<mandala::Result<_>>()?;
        mean(results)
    })
}

#[test]
fn an_aggregation_pipeline_in_frames() -> mandala::Result<()> {
    let storage = Storage::in_memory();
    let m = pipeline(&storage, &[1, 2, 3, 4, 5, 6])?;
    assert_eq!(storage.unwrap(&m)?, (5 + 25 + 61) / 3);
    assert_eq!(executed(&storage, "process"), 3);

    let mut cf = storage.cf("mean")?;
    cf.expand_back(None, true)?;
    // The list's elements project onto one edge: one list variable fed by many refs.
    let make = &cf.funcs()["__make_list__()"];
    assert_eq!(make.inputs.keys().collect::<Vec<_>>(), ["*elts"]);
    // The elements are named after the op that made them.
    assert_eq!(make.inputs["*elts"], "process");
    assert_eq!(cf.vars()["process"].len(), 3);
    let table = cf.df(false)?;
    assert_eq!(table.len(), 1, "one aggregate, one row:\n{table}");
    // Expanded back from the aggregate, the row reaches every element's history.
    let chunks: Vec<Vec<Vec<i64>>> = table.column_sets("chunk")?;
    let mut row = chunks[0].clone();
    row.sort();
    assert_eq!(row, [vec![1, 2], vec![3, 4], vec![5, 6]]);
    let mut results: Vec<i64> = table.column_sets::<i64>("process")?.remove(0);
    results.sort();
    assert_eq!(results, [5, 25, 61]);
    assert_eq!(
        table.column::<Vec<i64>>("data")?,
        [Some(vec![1, 2, 3, 4, 5, 6])]
    );
    assert_eq!(table.column::<i64>("mean")?, [Some(30)]);
    // A list variable reads as its elements.
    assert_eq!(table.column::<Vec<i64>>("xs")?.len(), 1);
    let shown = table.clone().values()?.to_string();
    assert!(shown.contains("{5, 25, 61}"), "a collection cell:\n{shown}");
    assert!(
        shown.contains("[[1, 2], [3, 4], [5, 6]]"),
        "a list shows its elements:\n{shown}"
    );
    let dot = cf.to_dot(false);
    assert!(
        dot.contains(
            "\"process\" -> \"__make_list__()\" [label=\"*elts\", style=bold, arrowtail=crow, dir=both]"
        ),
        "{dot}"
    );
    assert!(
        cf.to_svg(false)?.contains("*elts"),
        "the SVG draws the edge"
    );

    // Adding one chunk recomputes one chunk: only the new element's call executes.
    PROCESS_RUNS.store(0, std::sync::atomic::Ordering::SeqCst);
    let m2 = pipeline(&storage, &[1, 2, 3, 4, 5, 6, 7, 8])?;
    assert_eq!(PROCESS_RUNS.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(executed(&storage, "process"), 4);
    assert_eq!(executed(&storage, "mean"), 2);
    assert_eq!(storage.unwrap(&m2)?, (5 + 25 + 61 + 113) / 4);
    let mut cf = storage.cf("mean")?;
    cf.expand_back(None, true)?;
    let table = cf.df(false)?;
    assert_eq!(table.len(), 2, "two aggregates:\n{table}");
    let sizes: Vec<usize> = table
        .column_sets::<i64>("process")?
        .iter()
        .map(Vec::len)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(sizes, [3, 4]);
    Ok(())
}

/// An element that cannot be stored when it is `Bad`.
#[derive(Clone, Debug, serde::Deserialize)]
enum Item {
    Good(u8),
    Bad,
}

impl serde::Serialize for Item {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Item::Good(n) => s.serialize_u8(*n),
            Item::Bad => Err(serde::ser::Error::custom("Bad refuses to be serialized")),
        }
    }
}

#[op]
fn count_items(items: MList<Item>) -> usize {
    items.len()
}

#[op]
fn make_items(n: u8) -> MList<Item> {
    (0..n)
        .map(|i| if i == 2 { Item::Bad } else { Item::Good(i) })
        .collect()
}

#[test]
fn an_element_that_cannot_be_stored_is_named_and_nothing_is_stored() {
    let storage = Storage::in_memory();
    let e = storage
        .run(|| count_items(vec![Item::Good(1), Item::Bad]))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "op 'count_items': element 1 of argument 'items' cannot be stored: value cannot be serialized: Bad refuses to be serialized"
    );
    let e = storage.run(|| make_items(4)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "op 'make_items': element 2 of output 'output_0' cannot be stored: value cannot be serialized: Bad refuses to be serialized"
    );
    assert!(storage.backend().all_calls().unwrap().is_empty());
    let n = storage.run(|| count_items(vec![Item::Good(1)])).unwrap();
    assert_eq!(storage.unwrap(&n).unwrap(), 1);
}

#[test]
fn collections_under_versioning() -> mandala::Result<()> {
    let storage = Storage::in_memory().versioned(mandala::Versioning::tracking([""]))?;
    pipeline(&storage, &[1, 2, 3, 4])?;
    let executed_once = storage.stats().total.executed;
    assert_eq!(executed_once, 4, "split, two process calls, mean");
    let m = pipeline(&storage, &[1, 2, 3, 4])?;
    assert_eq!(storage.stats().total.executed, executed_once);
    assert_eq!(storage.unwrap(&m)?, (5 + 25) / 2);
    Ok(())
}

#[test]
fn a_list_output_reused_under_another_history_gets_its_elements_histories() -> mandala::Result<()> {
    let storage = Storage::in_memory();
    let a = storage.run(|| add_one_each(vec![1, 2]))?;
    // The same content through another history: [inc(0), inc(1)].
    let refs: Vec<Ref<u64>> = storage.run(|| (0..2).map(inc).collect())?;
    let b = storage.run(|| add_one_each(refs))?;
    assert_eq!(executed(&storage, "add_one_each"), 1);
    assert_eq!(storage.stats().op("add_one_each").reused, 1);
    assert_ne!(a.hid(), b.hid());
    assert_eq!(a.cid(), b.cid());
    for (i, elt) in b.iter().enumerate() {
        let creator = storage
            .get_ref_creator(elt)?
            .expect("recorded under the new history");
        assert_eq!(creator.record.op, "__list_getitem__");
        assert_eq!(creator.record.inputs[1].hid, b.hid());
        assert_eq!(elt.cid(), a[i].cid());
        assert_ne!(elt.hid(), a[i].hid());
    }
    // A list ref loaded by its hid has its elements.
    let again = storage.load_ref::<MList<u64>>(&b.hid())?;
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].hid(), b[1].hid());
    assert_eq!(storage.unwrap(&again)?, vec![2, 3]);
    // Loading a list's ref as a dict is an error naming it.
    let e = storage.load_ref::<MDict<u64>>(&b.hid()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "value {} does not decode as a dict (MDict): the shape of another kind of collection",
            b.cid()
        )
    );
    Ok(())
}

#[test]
fn empty_collections() -> mandala::Result<()> {
    let storage = Storage::in_memory();
    let none = storage.run(|| get_primes(2))?;
    assert!(none.is_empty());
    assert_eq!(storage.unwrap(&none)?, Vec::<u64>::new());
    let s = storage.run(|| sum_nums(Vec::<u64>::new()))?;
    assert_eq!(storage.unwrap(&s)?, 0);
    // The empty list passed back is the same content: reused.
    storage.run(|| sum_nums(&none))?;
    assert_eq!(executed(&storage, "sum_nums"), 1);
    let t = storage.run(|| total_length(BTreeMap::<String, u64>::new()))?;
    assert_eq!(storage.unwrap(&t)?, 0);
    Ok(())
}

/// docs/tools/read_pack.py, written from docs/FORMAT.md with Python's blake3, zstandard and
/// cbor2 only, re-derives every list's and dict's shape from its elements and every element's
/// history from its collection in a pack of a store that used both.
#[test]
fn an_independent_reader_re_derives_collections() -> mandala::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path().join("s.mandala"))?;
    storage.run(|| -> mandala::Result<()> {
        let primes = get_primes(12)?; // 5 elements: 5 get-item calls
        sum_nums(&primes[1..4])?; // a make-list call
        let lengths = word_lengths(vec!["ab".to_string(), "c".to_string()])?; // make-list, 2 get-items
        total_length(&lengths)?;
        Ok(())
    })?;
    storage.flush()?;
    let stdout = common::read_first_pack(&dir.path().join("s.mandala"));
    // 2 make-list calls, 5 list elements, 2 dict entries.
    assert!(
        stdout.ends_with("ok: 9 collections and elements re-derive their shapes and histories\n"),
        "{stdout}"
    );
    Ok(())
}

/// Deleting the call that made a list deletes every element's history downstream of it (its
/// get-item calls, the calls on the elements, the lists built from them, the aggregates), and
/// gc then removes only what nothing names: the store stays whole and recomputes the chain.
#[test]
fn deleting_a_list_and_collecting() -> mandala::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.mandala");
    let storage = Storage::open(&path)?;
    pipeline(&storage, &[1, 2, 3, 4, 5, 6])?;
    let other = storage.run(|| sum_nums(vec![7, 8]))?; // unrelated: must survive
    let deleted = storage.cf("split")?.delete_calls()?;
    // split, 3 get-items, 3 process, 1 make-list, 1 mean.
    assert_eq!(deleted, 9);
    let removed = storage.fs().unwrap().gc(false, std::time::Duration::ZERO)?;
    assert!(!removed.values.is_empty());
    let report = storage.verify()?;
    assert!(report.is_clean(), "{:#?}", report.problems);
    drop(storage);
    let storage = Storage::open(&path)?;
    assert_eq!(storage.unwrap(&storage.load_ref::<u64>(&other.hid())?)?, 15);
    let m = pipeline(&storage, &[1, 2, 3, 4, 5, 6])?;
    assert_eq!(storage.unwrap(&m)?, (5 + 25 + 61) / 3);
    assert_eq!(executed(&storage, "split"), 1);
    assert_eq!(executed(&storage, "process"), 3);
    assert_eq!(executed(&storage, "mean"), 1);
    Ok(())
}
