//! The seed-scenario program, variant `all_v2`: built from src/edits/scale_v2.rs, eval_v2.rs and nclass_v2.rs.

#[path = "../edits/eval_v2.rs"]
mod eval;
#[path = "../edits/nclass_v2.rs"]
mod nclass;
#[path = "../edits/scale_v2.rs"]
mod scale;
#[path = "../scenario.rs"]
mod scenario;

fn main() {
    scenario::main()
}
