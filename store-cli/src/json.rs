//! JSON helpers of the CLI (values are converted by `store_core::format::json`).

use serde_json::Value as Json;

pub use store_core::format::json::to_json;

/// Compact JSON text cut to `width` characters (with `…` when cut).
pub fn short(v: &Json, width: usize) -> String {
    let s = v.to_string();
    if s.chars().count() <= width {
        return s;
    }
    let mut cut: String = s.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cuts_long_text() {
        assert_eq!(short(&json!("abcdefgh"), 5), "\"abc…");
        assert_eq!(short(&json!("ab"), 5), "\"ab\"");
    }
}
