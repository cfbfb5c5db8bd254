//! Versioning, built on the engine: components and their content ([`component`]), the
//! dependencies a call records while it runs ([`deps`]), tracked globals ([`global`]), each
//! component's history of versions ([`history`], the DAG logic), turning versioning on for a
//! program and a store ([`state`]: settings, change detection, semantic ids), and reading
//! histories back ([`inspect`]). The stored shapes are in `crate::format::version`.

pub mod component;
pub mod deps;
pub mod global;
pub mod history;
pub mod inspect;
pub mod state;
