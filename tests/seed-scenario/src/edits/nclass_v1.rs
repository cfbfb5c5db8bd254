//! `N_CLASS` as first written.
use mandala::track;

#[track(name = "seed_scenario::N_CLASS")]
pub static N_CLASS: u32 = 2;
