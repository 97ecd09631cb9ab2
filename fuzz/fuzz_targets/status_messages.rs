//! `status::MessageBuffer` over datagrams, then `handoff::HandOff::parse` and `to_line` on
//! every message.
//!
//! Input: two bytes, the little-endian `max_bytes` (0 to 65535), then the datagrams,
//! separated by `0xFF` bytes (which never occur in UTF-8, so never in a valid message).
//!
//! Invariants: the messages handed out are exactly the complete lines (of the datagrams'
//! bytes put end to end) that are at most `max_bytes` long and are JSON objects, whatever
//! the split into datagrams; the counters agree; a hand-off message written with `to_line`
//! is one line that reads back as the same hand-off.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proc_wrapper::handoff::HandOff;
use proc_wrapper::status::MessageBuffer;
use serde_json::{Map, Value};

/// What the buffer should deliver, computed from the whole stream at once.
fn expected(stream: &[u8], max: usize) -> (Vec<Map<String, Value>>, u64) {
    let mut messages = Vec::new();
    let mut dropped = 0;
    let mut lines: Vec<&[u8]> = stream.split(|b| *b == b'\n').collect();
    // The bytes after the last newline are an unfinished message.
    let tail = lines.pop().unwrap_or_default();
    for line in lines {
        if line.len() > max {
            dropped += 1;
        } else if line.iter().all(u8::is_ascii_whitespace) {
        } else {
            match serde_json::from_slice::<Value>(line) {
                Ok(Value::Object(m)) => messages.push(m),
                _ => dropped += 1,
            }
        }
    }
    if tail.len() > max {
        dropped += 1;
    }
    (messages, dropped)
}

fn same_hand_off(a: &HandOff, b: &HandOff) -> bool {
    // Numbers may not survive a JSON round trip bit for bit (serde_json parses floats
    // without `float_roundtrip`), so fields are compared by key.
    a.request_id == b.request_id
        && a.phase == b.phase
        && a.task_execution_uuid == b.task_execution_uuid
        && a.log_group == b.log_group
        && a.log_stream == b.log_stream
        && a.error_type == b.error_type
        && a.error_message == b.error_message
        && a.fields.keys().eq(b.fields.keys())
}

fuzz_target!(|data: &[u8]| {
    let Some((max, rest)) = data.split_at_checked(2) else {
        return;
    };
    let max = usize::from(u16::from_le_bytes([max[0], max[1]]));
    let mut buffer = MessageBuffer::new(max);
    let mut got = Vec::new();
    for datagram in rest.split(|b| *b == 0xFF) {
        buffer.push(datagram, |m| got.push(m));
    }
    let stream: Vec<u8> = rest.iter().copied().filter(|b| *b != 0xFF).collect();
    let (want, dropped) = expected(&stream, max);
    assert_eq!(got, want, "messages differ from the lines of the stream");
    assert_eq!(buffer.accepted, got.len() as u64);
    assert_eq!(buffer.dropped, dropped);

    for message in got {
        let hand_off = HandOff::parse(message);
        let line = hand_off.to_line();
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1, "to_line wrote more than one line");
        let back: Map<String, Value> =
            serde_json::from_str(line.trim_end()).expect("to_line writes a JSON object");
        let again = HandOff::parse(back);
        assert!(
            same_hand_off(&hand_off, &again),
            "round trip changed {hand_off:?} into {again:?}"
        );
        // The line goes through a buffer big enough for it as one message.
        let mut b = MessageBuffer::new(line.len());
        let mut n = 0;
        b.push(line.as_bytes(), |_| n += 1);
        assert_eq!(n, 1);
    }
});
