//! The seed-scenario program, variant `scale_v2`: built from src/edits/scale_v2.rs, eval_v1.rs and nclass_v1.rs.

#[path = "../edits/eval_v1.rs"]
mod eval;
#[path = "../edits/nclass_v1.rs"]
mod nclass;
#[path = "../edits/scale_v2.rs"]
mod scale;
#[path = "../scenario.rs"]
mod scenario;

fn main() {
    scenario::main()
}
