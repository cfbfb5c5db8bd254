//! Golden vectors: the canonical CBOR and the content id of representative values, and the ids
//! derived for a call. Any change here is a format break: stores written before it would no
//! longer find their calls. `fixtures/golden-ids.tsv` holds the same vectors for other readers
//! (regenerate it with `MANDALA_BLESS=1` only for a deliberate, documented format change).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use store_core::format::cbor::to_canonical;
use store_core::format::record::{call_cid, call_hid, call_key, output_hid, source_hid};
use store_core::{Id, Kind, Slot};

struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

#[derive(Serialize)]
enum Shape {
    Empty,
    Circle(f64),
    Rect(u32, u32),
    Poly { sides: u8, name: String },
}

#[derive(Serialize)]
struct Inner {
    label: String,
    weights: Vec<f32>,
}

#[derive(Serialize)]
struct Outer {
    id: u64,
    inner: Inner,
    tags: Option<Vec<String>>,
    shape: Shape,
}

fn vectors() -> Vec<(&'static str, Vec<u8>)> {
    fn c<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
        to_canonical(v).unwrap()
    }
    let map100: HashMap<String, u32> = (0..100).map(|i| (format!("key{i}"), i * i)).collect();
    let floats: Vec<f64> = (0..16).map(|i| f64::from(i) / 3.0 - 2.0).collect();
    vec![
        ("u64 0", c(&0u64)),
        ("u8 23", c(&23u8)),
        ("u16 24", c(&24u16)),
        ("i32 -1", c(&-1i32)),
        ("u64 max", c(&u64::MAX)),
        ("i64 min", c(&i64::MIN)),
        ("u128 2^64", c(&(1u128 << 64))),
        ("f64 0.0", c(&0.0f64)),
        ("f64 -0.0", c(&-0.0f64)),
        ("f64 1.5", c(&1.5f64)),
        ("f64 0.1", c(&0.1f64)),
        ("f32 0.1", c(&0.1f32)),
        ("f64 NaN", c(&f64::NAN)),
        ("f64 inf", c(&f64::INFINITY)),
        ("f64 -inf", c(&f64::NEG_INFINITY)),
        ("bool true", c(&true)),
        ("unit", c(&())),
        ("str empty", c("")),
        ("str mandala", c("mandala")),
        ("str unicode", c("día ☀")),
        ("bytes", c(&Bytes(vec![0, 1, 2, 254, 255]))),
        ("option none", c(&None::<u8>)),
        ("option some", c(&Some(5u8))),
        ("enum unit", c(&Shape::Empty)),
        ("enum newtype", c(&Shape::Circle(2.5))),
        ("enum tuple", c(&Shape::Rect(3, 4))),
        (
            "enum struct",
            c(&Shape::Poly {
                sides: 6,
                name: "hex".into(),
            }),
        ),
        (
            "nested struct",
            c(&Outer {
                id: 7,
                inner: Inner {
                    label: "w".into(),
                    weights: vec![0.5, -1.25],
                },
                tags: Some(vec!["a".into(), "b".into()]),
                shape: Shape::Rect(1, 2),
            }),
        ),
        ("hashmap 100 keys", c(&map100)),
        (
            "btreemap mixed keys",
            c(&BTreeMap::from([(-1i64, "neg"), (10, "ten"), (1000, "k")])),
        ),
        ("vec f64", c(&floats)),
        ("tuple", c(&(1u8, "two", 3.0f64))),
    ]
}

/// (name, expected content id). Hard-coded: the ids of these values must never change.
const EXPECTED: &[(&str, &str)] = &[
    (
        "u64 0",
        "a99bb2a9e5a96af5ed740df2c4fc30dedd23d48fbb0af623d5d641a2cef43229",
    ),
    (
        "u8 23",
        "1682428f21297507abac5329cc00007029e8e6b12a6272333c23e1035586a2c9",
    ),
    (
        "u16 24",
        "5876f7b7a734312fe3c40e7341184010174da70e1a33b146f6bf9cf4ccf2e18e",
    ),
    (
        "i32 -1",
        "3a1fbecd0a339f3910b0a25ac63c605685d0cae4ba2a2ee9ea8f333ea46c5583",
    ),
    (
        "u64 max",
        "a2870449ba8f719e119acd16e00b178f1d2886aaf08920f248ab46cc9ce22c25",
    ),
    (
        "i64 min",
        "d5b531b87fedbe6c3a7701516087fba181dfdef31f62fbe54ee4992b60404339",
    ),
    (
        "u128 2^64",
        "f621acb99446f7408e4848567a702ce4552d032aa711491c0bd1d3be2a47ec60",
    ),
    (
        "f64 0.0",
        "a2e65f2e9fe73997dd91f0f45c36f8117c11b7f8a62c013113a39a50a131182a",
    ),
    (
        "f64 -0.0",
        "3b6d41dddfb4f06932497e0b6ffb7951e8d28a510ab9275b77ebb9a3fb34ac56",
    ),
    (
        "f64 1.5",
        "503dfa27f008548f848e10f3b0644c3169dc44aeab2737a9088eff40b6bb2568",
    ),
    (
        "f64 0.1",
        "2a48d0a729481920984f8872fc070381e6901b47b54f6945bc005224730d5c51",
    ),
    (
        "f32 0.1",
        "2c08234f6688b63c2f81d9219956674775ee4b286fd80e5dd8c229988b547e48",
    ),
    (
        "f64 NaN",
        "27acc7d2ef5753fbe1d42dea5ed0bee3d6f01147a06d7c1ebdcb8f71fb0f1353",
    ),
    (
        "f64 inf",
        "2a9884aed93725a505182a27bf0f5c088c6e9333c17d002e98fa41b329a000eb",
    ),
    (
        "f64 -inf",
        "d7cd0e951806dccfa260292c136936be7583c9a3e3c63746aa9e1b4a605066ed",
    ),
    (
        "bool true",
        "dd08d6f20d810dc5f5fc5890b38980d74ac94a4b0e2f9d5d39bbf04bfa68c886",
    ),
    (
        "unit",
        "8a4e11bf13202c1bfca21aad20fa475a3676c19e21fb29c0c5cc84956a1f99e4",
    ),
    (
        "str empty",
        "17f3c95289f17a39b1b89e34683fb3bd37d5796d571e90778e72578e6717455d",
    ),
    (
        "str mandala",
        "a8b3ba78f4dbe3086371f55be7739c10be02b093baca26aae06725f90f9cd26b",
    ),
    (
        "str unicode",
        "b1459ff7298e00efc9ba9e0d7c0a1037c9ae3d12352d56c904f0710174997c03",
    ),
    (
        "bytes",
        "53d8524806dc1192de049395f8968412c9e1d88174eaab15a76aba37fc63b5d3",
    ),
    (
        "option none",
        "8a4e11bf13202c1bfca21aad20fa475a3676c19e21fb29c0c5cc84956a1f99e4",
    ),
    (
        "option some",
        "e69f304a07139450c2549af2b26944e7163a79b43dd23849db6390dfd53033b0",
    ),
    (
        "enum unit",
        "f7c1de4405be1f981b4d2391415f54199f7f302b0ca86e9d45336ccc990c2eaf",
    ),
    (
        "enum newtype",
        "04f7681377b06c26694b323e51f8c028ebbb86d939d087646c1cac3953f7473e",
    ),
    (
        "enum tuple",
        "b30879963dc00a4cc41f55707a16a43748ff41c89cd2e3c7c3900527c7b007cb",
    ),
    (
        "enum struct",
        "0dae20871b7677233f57723fedd0bfd6e64ea2d7c76706c28e27bb45eded3066",
    ),
    (
        "nested struct",
        "7d31a939a09e876e99451551e3e3d65ce7c0d8a30894c557b2fe35f4cf95707a",
    ),
    (
        "hashmap 100 keys",
        "1f130b747d9f84a714e53aae5473f697123a601fe2fbf7aefa41de064e1b080e",
    ),
    (
        "btreemap mixed keys",
        "98968e50c30d4a50efd6f5de783b1b06c6af0ab365b6e937b1aebf96060c4c2e",
    ),
    (
        "vec f64",
        "1f39c01f27d0e7e10b1aa46e884b794f4ed55bca0b32c2e5b71ce954374352cc",
    ),
    (
        "tuple",
        "6812300f84ce1d0fdb3424e0e0f3499ba49973bfabd096f7e5e9a1fc40a3f8a9",
    ),
];

/// Asserts that each named id equals its frozen hex form, printing the actual table if not.
fn assert_frozen(got: &[(&str, Id)], expected: &[(&str, &str)]) {
    let printed: String = got
        .iter()
        .map(|(n, id)| format!("        ({n:?}, \"{id}\"),\n"))
        .collect();
    assert_eq!(got.len(), expected.len(), "actual:\n{printed}");
    for ((n, id), (en, eid)) in got.iter().zip(expected) {
        assert_eq!(
            (*n, id.to_string()),
            (*en, eid.to_string()),
            "format break! actual:\n{printed}"
        );
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn table() -> String {
    let mut s = String::from(
        "# name\tcanonical CBOR (hex)\tcid = BLAKE3-derive_key(\"mandala v1 value\", CBOR)\n",
    );
    for (name, cbor) in vectors() {
        s.push_str(&format!(
            "{name}\t{}\t{}\n",
            hex(&cbor),
            Id::hash(Kind::Value, &cbor)
        ));
    }
    s
}

#[test]
fn value_ids_are_frozen() {
    let actual: Vec<(&str, String)> = vectors()
        .into_iter()
        .map(|(n, cbor)| (n, Id::hash(Kind::Value, &cbor).to_string()))
        .collect();
    let printed: String = actual
        .iter()
        .map(|(n, id)| format!("    ({n:?}, {id:?}),\n"))
        .collect();
    assert_eq!(
        actual.len(),
        EXPECTED.len(),
        "vectors and expected ids differ in number; actual:\n{printed}"
    );
    for ((name, id), (ename, eid)) in actual.iter().zip(EXPECTED) {
        assert_eq!(
            (name, id.as_str()),
            (ename, *eid),
            "format break! actual:\n{printed}"
        );
    }
}

#[test]
fn the_fixture_file_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/golden-ids.tsv");
    if std::env::var_os("MANDALA_BLESS").is_some() {
        std::fs::write(path, table()).unwrap();
    }
    assert_eq!(std::fs::read_to_string(path).unwrap(), table());
}

#[test]
fn call_ids_are_frozen() {
    let x = Id::hash(Kind::Value, &to_canonical(&1i64).unwrap());
    let inputs = vec![Slot {
        name: "x".into(),
        hid: source_hid(&x),
        cid: x,
    }];
    let semver = Id::unversioned();
    let hid = call_hid("inc", &inputs, &semver);
    let got = [
        ("source hid", source_hid(&x)),
        ("unversioned", semver),
        ("call key", call_key("inc", &inputs)),
        ("call cid", call_cid("inc", &inputs, &semver)),
        ("call hid", hid),
        ("output hid", output_hid(&hid, "output_0")),
    ];
    let expected: &[(&str, &str)] = &[
        (
            "source hid",
            "54ac8c4afa623317ddfe02825684ac4e22fe81856e1677edeba3b6ac8ad0acc6",
        ),
        (
            "unversioned",
            "0e1a211dda81d2273c3501384ddb25e67af81ac4238d959d30ebf31147c83dab",
        ),
        (
            "call key",
            "4b42b15fd77f2b65cb6823cdaa7f5e71627b346ab70ffd148b0c2d7236579b74",
        ),
        (
            "call cid",
            "f71b507a31fa6948f72deec7d5c3086d7c4b551736e02dc61f94d3e7b78d4994",
        ),
        (
            "call hid",
            "558445c581b4b2332c28679fb398399aceaeda982313dfae1c1b990cefe871c5",
        ),
        (
            "output hid",
            "d18790c8d696e1c2ea4673c852b5c1f75dc646f14ff2df768de29a17f28c650f",
        ),
    ];
    assert_frozen(&got, expected);
}

#[test]
fn some_encodings_are_as_rfc_8949_says() {
    let v: BTreeMap<&str, Vec<u8>> = vectors().into_iter().collect();
    assert_eq!(hex(&v["f64 -0.0"]), "f98000");
    assert_eq!(hex(&v["f64 NaN"]), "f97e00");
    assert_eq!(hex(&v["u128 2^64"]), "c249010000000000000000");
    assert_eq!(hex(&v["enum unit"]), "65456d707479");
    assert_eq!(hex(&v["option none"]), "f6");
    assert_eq!(hex(&v["bytes"]), "45000102feff");
}

#[test]
fn versioning_ids_are_frozen() {
    use std::collections::BTreeMap;
    let content = store_core::version::component::source_id("fn f ( ) -> u8 { 1 } ");
    let deps: BTreeMap<String, Id> = [("f".to_string(), content)].into();
    let semver = store_core::format::record::semantic_version(&deps);
    let version = store_core::version::history::VersionRecord {
        component: "f".into(),
        content,
        parents: vec![],
        semantic: content,
        source: Id([0; 32]),
        git: None,
    }
    .id();
    let got = [
        ("source", content),
        ("semver", semver),
        ("version", version),
    ];
    let expected: &[(&str, &str)] = &[
        (
            "source",
            "7cad0cdf8faeae4bb03be334a559b1b89bbeaf340b0c63f386e2a674140ac857",
        ),
        (
            "semver",
            "eb879f561d943b77e71905b8735a219e82898c7831b093b0578e005eeb55505d",
        ),
        (
            "version",
            "d0c7295ae81f1bf18e11bb2ef7d04874e9a162dd582051df75e0d825c101ef01",
        ),
    ];
    assert_frozen(&got, expected);
}

/// The ids of collections (docs/FORMAT.md §6c): the list `[1, 2, 3]` and the dict
/// `{"a": 1, "b": 2}` of `i64` elements passed in from outside, the structural calls that build
/// them, and those that take them apart as outputs. `fixtures/golden-collections.tsv` holds the
/// same vectors for other readers.
fn collection_vectors() -> Vec<(&'static str, String, Id)> {
    use store_core::format::collection::{Shape, Structural};
    let elt = |v: i64| {
        let cid = Id::hash(Kind::Value, &to_canonical(&v).unwrap());
        (cid, source_hid(&cid))
    };
    let elements: Vec<(Id, Id)> = [1, 2, 3].map(elt).to_vec();
    let list = Shape::List(elements.iter().map(|e| e.0).collect());
    let make_list = Structural::make_list(&elements);
    let list_ids = (list.cid(), make_list.output_hid);
    let item = Structural::list_item(list_ids, 1);
    let entries: Vec<(String, Id, Id)> = [("a", 1), ("b", 2)]
        .map(|(k, v)| (k.to_string(), elt(v).0, elt(v).1))
        .to_vec();
    let dict = Shape::Dict(entries.iter().map(|(k, c, _)| (k.clone(), *c)).collect());
    let make_dict = Structural::make_dict(&entries);
    let dict_ids = (dict.cid(), make_dict.output_hid);
    let entry = Structural::dict_item(dict_ids, "b");
    vec![
        ("list [1,2,3] cid", hex(&list.encode()), list.cid()),
        ("__make_list__ call key", String::new(), make_list.key),
        ("__make_list__ call hid", String::new(), make_list.hid),
        (
            "list hid (output 'list')",
            String::new(),
            make_list.output_hid,
        ),
        ("__list_getitem__ [1] call hid", String::new(), item.hid),
        (
            "element [1] hid (output 'item')",
            String::new(),
            item.output_hid,
        ),
        ("dict {a:1,b:2} cid", hex(&dict.encode()), dict.cid()),
        ("__make_dict__ call hid", String::new(), make_dict.hid),
        (
            "dict hid (output 'dict')",
            String::new(),
            make_dict.output_hid,
        ),
        (
            "__dict_getitem__ [\"b\"] call hid",
            String::new(),
            entry.hid,
        ),
        (
            "entry [\"b\"] hid (output 'item')",
            String::new(),
            entry.output_hid,
        ),
    ]
}

#[test]
fn collection_ids_are_frozen() {
    let got: Vec<(&str, Id)> = collection_vectors()
        .into_iter()
        .map(|(n, _, id)| (n, id))
        .collect();
    // Checked against an independent implementation (Python: blake3 + cbor2, as
    // docs/FORMAT.md §6c describes the ids).
    let expected: &[(&str, &str)] = &[
        (
            "list [1,2,3] cid",
            "0ea9489f80e613cacdb6149145e112ca94d300ccf5b0d57537187b0178275627",
        ),
        (
            "__make_list__ call key",
            "a7914696396c9a0c246b77219e580802070197439b845f73cdc3f5ffd4f1559b",
        ),
        (
            "__make_list__ call hid",
            "dfd0df54f906bfb903dc3087676bd19eda2a8f2e68c763158b73e32605a7a61c",
        ),
        (
            "list hid (output 'list')",
            "fd1607a4bc1f7f1830f90ee6cd420510b408ca81ada507a70c186f557cd40fa3",
        ),
        (
            "__list_getitem__ [1] call hid",
            "91d384fd04c168558c15ee9aa817a8f98476b77039c05c58b3af42d9b9da9ed8",
        ),
        (
            "element [1] hid (output 'item')",
            "9e08d74979a5640f01bbfbe64b8717040fbd07b060e0d431c6ea09ff985fe0e9",
        ),
        (
            "dict {a:1,b:2} cid",
            "25626f54ba93746260b77230e8e07cb289afd1eeb461e7ce3da0c97269a13bd3",
        ),
        (
            "__make_dict__ call hid",
            "67d6d945d47fcee3522240fa29951211bafc8f900068c39e74c80b056f560d78",
        ),
        (
            "dict hid (output 'dict')",
            "e2427e07d3dfaf8cf7a68e0a2583be2c60a81a7965ec23167590feb890b25063",
        ),
        (
            "__dict_getitem__ [\"b\"] call hid",
            "391d6e4037bcfa9ed9f69a8ba2f7a7747fdfab875a580f5fb53cc4da75e27ebc",
        ),
        (
            "entry [\"b\"] hid (output 'item')",
            "d1cc0ec637ada61ff3f1b8c615e86b3ff16168086e5dc088f6f6e00e736d62ef",
        ),
    ];
    assert_frozen(&got, expected);
}

#[test]
fn the_collections_fixture_matches_the_code() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/golden-collections.tsv"
    );
    let mut table =
        String::from("# name\tcanonical CBOR of the shape (hex), for a collection's cid\tid\n");
    for (name, cbor, id) in collection_vectors() {
        table.push_str(&format!("{name}\t{cbor}\t{id}\n"));
    }
    if std::env::var_os("MANDALA_BLESS").is_some() {
        std::fs::write(path, &table).unwrap();
    }
    assert_eq!(std::fs::read_to_string(path).unwrap(), table);
}
