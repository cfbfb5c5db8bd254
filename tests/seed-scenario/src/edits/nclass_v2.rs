//! `N_CLASS` changed: a semantic change of a tracked global.
use mandala::track;

#[track(name = "seed_scenario::N_CLASS")]
pub static N_CLASS: u32 = 3;
