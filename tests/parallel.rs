//! Threads of one process reaching the same call at once compute it once: the others wait for
//! it and find it; a failing computation releases its waiters; nested ops do not deadlock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use mandala::{op, Ref, Storage};

// The counters are per process and tests run in parallel: every test holds this.
static SERIAL: Mutex<()> = Mutex::new(());

static SLOW_RUNS: AtomicU64 = AtomicU64::new(0);

#[op]
fn slow(x: u64) -> u64 {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(30));
    x * 10
}

/// 8 threads over a grid where every call appears 4 times: each distinct call executes once,
/// and the results are those of a sequential run.
#[test]
fn a_grid_on_8_threads_computes_each_call_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    SLOW_RUNS.store(0, Ordering::SeqCst);
    let storage = Storage::in_memory();
    // Every value 4 times, in an order that sends the copies to different threads.
    let grid: Vec<u64> = (0..4).flat_map(|_| 0..12u64).collect();
    let chunks: Vec<Vec<u64>> = (0..8)
        .map(|t| grid.iter().copied().skip(t).step_by(8).collect())
        .collect();
    let results: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                let storage = storage.clone();
                s.spawn(move || {
                    storage
                        .run(|| {
                            chunk
                                .iter()
                                .map(|x| slow(*x))
                                .collect::<mandala::Result<Vec<_>>>()
                        })
                        .unwrap()
                        .iter()
                        .map(|r| storage.unwrap(r).unwrap())
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        SLOW_RUNS.load(Ordering::SeqCst),
        12,
        "each distinct call once"
    );
    for (chunk, got) in chunks.iter().zip(&results) {
        let want: Vec<u64> = chunk.iter().map(|x| x * 10).collect();
        assert_eq!(got, &want);
    }
    let total = storage.stats().total;
    assert_eq!(total.executed, 12);
    assert_eq!(total.hits + total.reused, 36);
    assert!(total.waited > 0, "some threads waited: {total:?}");
    // par_map: the same grid, all hits now, in input order.
    let ys: Vec<Ref<u64>> = storage.par_map(grid.clone(), slow).unwrap();
    let values: Vec<u64> = ys.iter().map(|y| storage.unwrap(y).unwrap()).collect();
    assert_eq!(values, grid.iter().map(|x| x * 10).collect::<Vec<_>>());
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 12);
}

static FAIL_NEXT: AtomicBool = AtomicBool::new(true);
static FLAKY_RUNS: AtomicU64 = AtomicU64::new(0);

#[op]
fn flaky(x: u64) -> u64 {
    FLAKY_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(150));
    if FAIL_NEXT.swap(false, Ordering::SeqCst) {
        panic!("flaky fails once");
    }
    x + 1
}

/// A panic in the computing thread releases the thread waiting for the same call, which then
/// computes it itself.
#[test]
fn a_panic_releases_the_waiters() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    FAIL_NEXT.store(true, Ordering::SeqCst);
    FLAKY_RUNS.store(0, Ordering::SeqCst);
    let storage = Storage::in_memory();
    let (first, second) = std::thread::scope(|s| {
        let a = {
            let storage = storage.clone();
            s.spawn(move || storage.run(|| flaky(1)).map(|r| storage.unwrap(&r)))
        };
        std::thread::sleep(Duration::from_millis(40)); // a has claimed the call
        let b = {
            let storage = storage.clone();
            s.spawn(move || storage.run(|| flaky(1)).map(|r| storage.unwrap(&r)))
        };
        (a.join(), b.join())
    });
    assert!(first.is_err(), "the first computation panicked");
    assert_eq!(second.unwrap().unwrap().unwrap(), 2);
    assert_eq!(
        FLAKY_RUNS.load(Ordering::SeqCst),
        2,
        "the waiter computed it after the panic"
    );
    assert_eq!(storage.stats().op("flaky").executed, 1);
}

thread_local! {
    static ROLE: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

#[op]
fn ping(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(60));
    if ROLE.get() == 1 {
        pong(x).map(|r| mandala::unwrap(&r).unwrap()).unwrap() + 1
    } else {
        x
    }
}

#[op]
fn pong(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(60));
    if ROLE.get() == 2 {
        ping(x).map(|r| mandala::unwrap(&r).unwrap()).unwrap() + 2
    } else {
        x
    }
}

/// Thread 1 computes ping, which calls pong; thread 2 computes pong, which calls ping: each
/// would wait for the other. The second to ask computes instead, and both finish.
#[test]
fn ops_waiting_on_each_other_do_not_deadlock() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let storage = Storage::in_memory();
    let (tx, rx) = std::sync::mpsc::channel();
    for role in [1u8, 2] {
        let storage = storage.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            ROLE.set(role);
            let r = if role == 1 {
                storage.run(|| ping(5))
            } else {
                storage.run(|| pong(5))
            };
            tx.send((role, r.map(|r| storage.unwrap(&r).unwrap())))
                .unwrap();
        });
    }
    let mut done = Vec::new();
    for _ in 0..2 {
        let (role, r) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("both threads finish: no deadlock");
        done.push((role, r.unwrap()));
    }
    done.sort();
    assert_eq!(done.len(), 2, "{done:?}");
}

/// A storage handle goes to any thread.
#[test]
fn storage_is_send_and_sync() {
    fn both<T: Send + Sync>() {}
    both::<Storage>();
    both::<Ref<u64>>();
    let storage = Storage::in_memory();
    let seq: Vec<u64> = storage
        .map(0..4u64, |x| slow(x).and_then(|r| mandala::unwrap(&r)))
        .unwrap();
    assert_eq!(seq, [0, 10, 20, 30]);
}
