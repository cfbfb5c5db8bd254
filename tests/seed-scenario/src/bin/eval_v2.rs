//! The seed-scenario program, variant `eval_v2`: built from src/edits/scale_v1.rs, eval_v2.rs and nclass_v1.rs.

#[path = "../edits/eval_v2.rs"]
mod eval;
#[path = "../edits/nclass_v1.rs"]
mod nclass;
#[path = "../edits/scale_v1.rs"]
mod scale;
#[path = "../scenario.rs"]
mod scenario;

fn main() {
    scenario::main()
}
