//! Call records: what the store keeps of one call, and the ids derived from it.
//!
//! A record names the op, its semantic version, and each input and output by name with its
//! history id (hid) and content id (cid). From a record alone one can recompute the call's cid
//! (its directory), hid (its file name), each output hid, and the record id (its file suffix),
//! which is what `fsck` checks.

use serde::{Deserialize, Serialize};

use crate::cbor;
use crate::id::{Id, Kind};

/// One named input or output of a call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The argument or output name.
    pub name: String,
    /// The history id of the ref in this slot.
    pub hid: Id,
    /// The content id of its value.
    pub cid: Id,
}

/// The stored form of a call. Inputs are sorted by name; outputs keep the op's order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// The op's name (its identity).
    pub op: String,
    /// The semantic version of the code that produced the call ([`Id::unversioned`] while
    /// versioning is off).
    pub semver: Id,
    /// Stored inputs, sorted by name (ignored and defaulted arguments are absent).
    pub inputs: Vec<Slot>,
    /// Outputs in the op's order.
    pub outputs: Vec<Slot>,
}

struct Named<'a, F: Fn(&Slot) -> &Id>(&'a [Slot], F);

impl<F: Fn(&Slot) -> &Id> Serialize for Named<'_, F> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for slot in self.0 {
            m.serialize_entry(&slot.name, (self.1)(slot))?;
        }
        m.end()
    }
}

fn hash_of<T: Serialize>(kind: Kind, preimage: &T) -> Id {
    // The preimages here are strings, ids and maps of them: encoding cannot fail.
    let bytes = cbor::to_canonical(preimage).expect("call preimages always encode");
    Id::hash(kind, &bytes)
}

/// The content id of a call: `H_call_cid([op, {input name: cid}, semver])`.
pub fn call_cid(op: &str, inputs: &[Slot], semver: &Id) -> Id {
    hash_of(Kind::CallCid, &(op, Named(inputs, |s| &s.cid), semver))
}

/// The history id of a call: `H_call_hid([op, {input name: hid}, semver])`.
pub fn call_hid(op: &str, inputs: &[Slot], semver: &Id) -> Id {
    hash_of(Kind::CallHid, &(op, Named(inputs, |s| &s.hid), semver))
}

/// The call key, without any version: `H_call_key([op, {input name: cid}])`.
pub fn call_key(op: &str, inputs: &[Slot]) -> Id {
    hash_of(Kind::CallKey, &(op, Named(inputs, |s| &s.cid)))
}

/// The history id of output `name` of the call `call_hid`: `H_output_hid([call_hid, name])`.
pub fn output_hid(call_hid: &Id, name: &str) -> Id {
    hash_of(Kind::OutputHid, &(call_hid, name))
}

/// The history id of a value passed in from outside: `H_source_hid(cid bytes)`.
pub fn source_hid(cid: &Id) -> Id {
    Id::hash(Kind::SourceHid, cid.as_bytes())
}

impl CallRecord {
    /// This call's content id.
    pub fn cid(&self) -> Id {
        call_cid(&self.op, &self.inputs, &self.semver)
    }

    /// This call's history id.
    pub fn hid(&self) -> Id {
        call_hid(&self.op, &self.inputs, &self.semver)
    }

    /// The canonical CBOR bytes of the record (what the store compresses).
    pub fn to_cbor(&self) -> Vec<u8> {
        cbor::to_canonical(self).expect("call records always encode")
    }

    /// The record id: `H_call_record(canonical CBOR of the record)`.
    pub fn rid(&self) -> Id {
        Id::hash(Kind::CallRecord, &self.to_cbor())
    }

    /// The same outcome recorded under other input histories: inputs take `inputs`' hids and
    /// every output hid is derived anew from the new call hid. Used for content reuse.
    pub fn rehistoried(&self, inputs: Vec<Slot>) -> CallRecord {
        let hid = call_hid(&self.op, &inputs, &self.semver);
        CallRecord {
            op: self.op.clone(),
            semver: self.semver,
            inputs,
            outputs: self
                .outputs
                .iter()
                .map(|o| Slot {
                    name: o.name.clone(),
                    hid: output_hid(&hid, &o.name),
                    cid: o.cid,
                })
                .collect(),
        }
    }

    /// The output slot named `name`.
    pub fn output(&self, name: &str) -> Option<&Slot> {
        self.outputs.iter().find(|o| o.name == name)
    }
}

/// A call record as found in a store, with the ids its location names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCall {
    /// The call's content id (its directory).
    pub cid: Id,
    /// The call's history id.
    pub hid: Id,
    /// The record id.
    pub rid: Id,
    /// The record.
    pub record: CallRecord,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(name: &str, n: u8) -> Slot {
        Slot {
            name: name.into(),
            hid: Id([n; 32]),
            cid: Id([n + 1; 32]),
        }
    }

    #[test]
    fn cid_ignores_histories_and_hid_ignores_contents() {
        let a = vec![slot("x", 1)];
        let mut b = a.clone();
        b[0].hid = Id([9; 32]);
        let v = Id::unversioned();
        assert_eq!(call_cid("inc", &a, &v), call_cid("inc", &b, &v));
        assert_ne!(call_hid("inc", &a, &v), call_hid("inc", &b, &v));
        assert_ne!(call_cid("inc", &a, &v), call_cid("dec", &a, &v));
        assert_ne!(call_cid("inc", &a, &v), call_cid("inc", &a, &Id([0; 32])));
    }

    #[test]
    fn input_order_does_not_matter() {
        let v = Id::unversioned();
        let ab = [slot("a", 1), slot("b", 2)];
        let ba = [slot("b", 2), slot("a", 1)];
        assert_eq!(call_hid("f", &ab, &v), call_hid("f", &ba, &v));
    }

    #[test]
    fn rehistoried_keeps_contents_and_derives_output_hids() {
        let rec = CallRecord {
            op: "inc".into(),
            semver: Id::unversioned(),
            inputs: vec![slot("x", 1)],
            outputs: vec![slot("output_0", 3)],
        };
        let mut x = slot("x", 1);
        x.hid = Id([7; 32]);
        let new = rec.rehistoried(vec![x]);
        assert_eq!(new.cid(), rec.cid());
        assert_ne!(new.hid(), rec.hid());
        assert_eq!(new.outputs[0].cid, rec.outputs[0].cid);
        assert_eq!(new.outputs[0].hid, output_hid(&new.hid(), "output_0"));
    }
}
