//! NDJSON framing: splits a byte stream into lines as its chunks arrive,
//! holding at most one line (up to a limit) at a time. A line over the
//! limit is rejected and the rest of it skipped unread into memory; blank
//! lines are skipped (they still count for the line numbers of the file).

use serde_json::Value;

use crate::domain::{ErrorKey, RuleError};

/// One line of the input, numbered from 1 as in the file.
#[derive(Debug)]
pub enum Line {
    Json(u64, Value),
    Rejected(u64, RuleError),
}

impl Line {
    pub fn number(&self) -> u64 {
        match self {
            Line::Json(n, _) | Line::Rejected(n, _) => *n,
        }
    }
}

pub struct Splitter {
    buf: Vec<u8>,
    max: usize,
    line: u64,
    /// The current line went over the limit: drop its bytes up to its end.
    skipping: bool,
}

impl Splitter {
    pub fn new(max_line_bytes: usize) -> Splitter {
        Splitter {
            buf: Vec::new(),
            max: max_line_bytes.max(1),
            line: 0,
            skipping: false,
        }
    }

    /// Takes a chunk; the lines it completes go to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Line>) {
        while let Some(end) = chunk.iter().position(|b| *b == b'\n') {
            self.take(&chunk[..end]);
            self.end_line(out);
            chunk = &chunk[end + 1..];
        }
        self.take(chunk);
    }

    /// The end of the input: a last line without a newline counts too.
    pub fn finish(&mut self, out: &mut Vec<Line>) {
        if !self.buf.is_empty() || self.skipping {
            self.end_line(out);
        }
    }

    fn take(&mut self, part: &[u8]) {
        if self.skipping || part.is_empty() {
            return;
        }
        if self.buf.len() + part.len() > self.max {
            self.skipping = true;
            self.buf = Vec::new();
        } else {
            self.buf.extend_from_slice(part);
        }
    }

    fn end_line(&mut self, out: &mut Vec<Line>) {
        self.line += 1;
        if std::mem::take(&mut self.skipping) {
            out.push(Line::Rejected(
                self.line,
                RuleError::new(
                    ErrorKey::PayloadTooLarge,
                    format!("the line exceeds {} bytes", self.max),
                ),
            ));
            return;
        }
        let text = self.buf.trim_ascii();
        if !text.is_empty() {
            out.push(match crate::json_text::parse(text) {
                Ok(v) => Line::Json(self.line, v),
                Err(e) => Line::Rejected(self.line, RuleError::new(ErrorKey::InvalidJson, e)),
            });
        }
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> Vec<(u64, Result<Value, String>)> {
        let mut s = Splitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut out);
        }
        s.finish(&mut out);
        out.into_iter()
            .map(|l| match l {
                Line::Json(n, v) => (n, Ok(v)),
                Line::Rejected(n, e) => (n, Err(e.key.as_str().to_owned())),
            })
            .collect()
    }

    #[test]
    fn lines_across_chunks_blank_lines_and_a_last_line_without_newline() {
        let got = split(&[b"{\"a\":", b"1}\n\n  \r\n{\"b\":2}\r", b"\n[3]"], 100);
        assert_eq!(
            got,
            vec![
                (1, Ok(serde_json::json!({"a": 1}))),
                (4, Ok(serde_json::json!({"b": 2}))),
                (5, Ok(serde_json::json!([3]))),
            ]
        );
    }

    #[test]
    fn an_overlong_line_is_rejected_and_the_next_one_read() {
        let long = vec![b'x'; 50];
        let got = split(&[b"{}\n", &long, &long, b"\n{\"c\":1}\nnot json\n"], 40);
        assert_eq!(got[0], (1, Ok(serde_json::json!({}))));
        assert_eq!(got[1], (2, Err("PayloadTooLarge".into())));
        assert_eq!(got[2], (3, Ok(serde_json::json!({"c": 1}))));
        assert_eq!(got[3], (4, Err("InvalidJson".into())));
    }
}
