//! Reading `GET /cluster/events` as a client ([`super::events`] is the server): a
//! Server-Sent Events parser fed the body's chunks as they come. `vigil events` and the
//! tests read the stream through it.

/// One SSE event as read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:`.
    pub event: String,
    /// `id:`.
    pub id: String,
    /// `data:` lines, joined with newlines.
    pub data: String,
}

/// Splits an SSE byte stream into events; feed it chunks as they come.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Adds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if self.has_data {
                    out.push(std::mem::take(&mut self.current));
                }
                self.current = SseEvent::default();
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.current.event = value.to_string(),
                "id" => self.current.id = value.to_string(),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_across_chunks_and_comments_skipped() {
        let mut p = SseParser::default();
        assert!(p.feed(b": keep-alive\n\nevent: member-fa").is_empty());
        let events = p.feed(b"iled\nid: 7-3\ndata: a\ndata: b\n\r\n");
        assert_eq!(
            events,
            vec![SseEvent {
                event: "member-failed".into(),
                id: "7-3".into(),
                data: "a\nb".into()
            }]
        );
    }
}
