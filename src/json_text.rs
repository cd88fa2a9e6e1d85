//! JSON from request bytes (bodies and NDJSON lines): RFC 8259 §8.1 wants
//! UTF-8 without a byte order mark, and a parser's own message ("expected
//! value at line 1 column 1") does not tell a till's developer that the
//! encoding is what is wrong.

use serde_json::Value;

/// What makes `bytes` no UTF-8 JSON text, said so that the fix is clear.
pub fn encoding_problem(bytes: &[u8]) -> Option<String> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Some(
            "JSON must be UTF-8 without BOM: it starts with a byte order mark (EF BB BF)".into(),
        );
    }
    if bytes.starts_with(b"\xFE\xFF") || bytes.starts_with(b"\xFF\xFE") {
        return Some(
            "JSON must be UTF-8 without BOM: it starts with a UTF-16 byte order mark".into(),
        );
    }
    std::str::from_utf8(bytes).err().map(|e| {
        format!(
            "JSON must be UTF-8 without BOM: the byte at offset {} is not UTF-8",
            e.valid_up_to()
        )
    })
}

/// Parses `bytes` as one JSON value; the error says what is wrong.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    if let Some(problem) = encoding_problem(bytes) {
        return Err(problem);
    }
    serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bom_or_other_bytes_than_utf8_are_named() {
        for bad in [
            &b"\xEF\xBB\xBF{}"[..],
            b"\xFF\xFE{\x00}\x00",
            b"{\"Name\":\"\xE9\"}",
        ] {
            let message = parse(bad).unwrap_err();
            assert!(message.contains("UTF-8 without BOM"), "{message}");
        }
        assert!(parse(b"{\"Name\":\"\xC3\xA9\"}").is_ok());
        assert!(parse(b"{").unwrap_err().starts_with("not valid JSON"));
    }
}
