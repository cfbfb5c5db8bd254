//! The format layer: what is stored and how it is named — ids ([`id`]), canonical CBOR
//! ([`cbor`]), call records and their decoder ([`record`]), the stored shapes of versioning
//! ([`version`]), collections' shapes and structural calls ([`collection`]), and values as JSON ([`json`]). Nothing here knows about storage or the
//! engine; docs/FORMAT.md is the spec these modules implement.

pub mod cbor;
pub mod collection;
pub mod id;
pub mod json;
pub mod record;
pub mod tag;
pub mod version;
