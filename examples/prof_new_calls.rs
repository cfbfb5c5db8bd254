use mandala::{op, Storage};
#[op]
fn add2(a: u64, b: u64) -> u64 {
    a + b
}
fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let mode = std::env::args().nth(2).unwrap_or_default();
    let n: u64 = std::env::args()
        .nth(3)
        .map(|s| s.parse().unwrap())
        .unwrap_or(20000);
    let t = std::time::Instant::now();
    let storage = Storage::open(&dir).unwrap();
    storage
        .run(|| -> mandala::Result<()> {
            for i in 0..n {
                let r = add2(i, i + 1)?;
                if mode == "hits" {
                    std::hint::black_box(storage.unwrap(&r)?);
                }
            }
            Ok(())
        })
        .unwrap();
    drop(storage);
    println!("{:.1} us/call", t.elapsed().as_secs_f64() * 1e6 / n as f64);
}
