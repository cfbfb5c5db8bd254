//! Stored values as JSON, decoded from CBOR without the program's types (for tables and the
//! CLI).
//!
//! ```
//! let v = ciborium::Value::Array(vec![ciborium::Value::Integer(3.into()), ciborium::Value::Null]);
//! assert_eq!(store_core::format::json::to_json(&v).to_string(), "[3,null]");
//! ```

use ciborium::Value as Cbor;
use serde_json::{json, Map, Value as Json};

/// Converts a CBOR item to JSON: maps with text keys become objects (others become lists of
/// `[key, value]` pairs), byte strings become `"h'…'"` hex, non-finite floats become strings,
/// tags become `{"tag": n, "value": …}`.
pub fn to_json(v: &Cbor) -> Json {
    match v {
        Cbor::Integer(i) => {
            let n = i128::from(*i);
            if let Ok(x) = i64::try_from(n) {
                json!(x)
            } else if let Ok(x) = u64::try_from(n) {
                json!(x)
            } else {
                json!(n.to_string())
            }
        }
        Cbor::Float(f) if f.is_finite() => json!(f),
        Cbor::Float(f) if f.is_nan() => json!("NaN"),
        Cbor::Float(f) => json!(if *f > 0.0 { "Infinity" } else { "-Infinity" }),
        Cbor::Bytes(b) => Json::String(format!(
            "h'{}'",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        )),
        Cbor::Text(s) => json!(s),
        Cbor::Bool(b) => json!(b),
        Cbor::Null => Json::Null,
        Cbor::Tag(t, inner) => json!({"tag": t, "value": to_json(inner)}),
        Cbor::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Cbor::Map(m) => {
            if m.iter().all(|(k, _)| k.is_text()) {
                let mut obj = Map::new();
                for (k, v) in m {
                    obj.insert(k.as_text().expect("checked").to_string(), to_json(v));
                }
                Json::Object(obj)
            } else {
                Json::Array(
                    m.iter()
                        .map(|(k, v)| json!([to_json(k), to_json(v)]))
                        .collect(),
                )
            }
        }
        _ => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_every_kind() {
        let v = Cbor::Map(vec![
            (Cbor::Text("b".into()), Cbor::Bytes(vec![1, 255])),
            (Cbor::Text("f".into()), Cbor::Float(f64::NAN)),
            (
                Cbor::Text("l".into()),
                Cbor::Array(vec![Cbor::Integer(3.into()), Cbor::Null]),
            ),
        ]);
        assert_eq!(
            to_json(&v).to_string(),
            r#"{"b":"h'01ff'","f":"NaN","l":[3,null]}"#
        );
        let m = Cbor::Map(vec![(Cbor::Integer(1.into()), Cbor::Bool(true))]);
        assert_eq!(to_json(&m).to_string(), "[[1,true]]");
        assert_eq!(to_json(&Cbor::Integer(u64::MAX.into())), json!(u64::MAX));
    }
}
