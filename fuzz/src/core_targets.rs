//! zab-core: the peer message codec (canonical by its docs) and the
//! streamed-snapshot decoder.

use bytes::BytesMut;
use zab_core::codec::{self, CodecError, StreamDecoder, FRAME_BYTES_MAX, SNAPSHOT_BYTES_MAX};
use zab_core::Message;

use crate::Input;

/// The tag of a streamed snapshot's first frame (`codec.rs`, tag 23).
const SNAPSHOT_BEGIN: u8 = 23;

/// A peer's receive buffer through `codec::decode` under a limit chosen by
/// the first byte. Every message re-encodes to the frame it came from, and
/// its `codec::frames` form (streamed in chunks of a size the second byte
/// picks) comes back whole through a `StreamDecoder`.
pub fn core_message(data: &[u8]) {
    let mut input = Input::new(data);
    let maxes = [0, 1, 16, 64, 4096, FRAME_BYTES_MAX, usize::MAX];
    let max = maxes[usize::from(input.u8()) % maxes.len()];
    let chunk = 1 + usize::from(input.u8()) % 64;
    let mut buf = BytesMut::from(input.rest());
    loop {
        let before = buf.clone();
        match codec::decode(&mut buf, max) {
            Ok(Some(msg)) => {
                let used = before.len() - buf.len();
                assert_eq!(
                    &codec::encode_to_bytes(&msg)[..],
                    &before[..used],
                    "decoded message is not canonical"
                );
                let mut again = BytesMut::new();
                codec::encode(&msg, &mut again);
                assert_eq!(&again[..], &before[..used]);
                let _ = msg.kind();
                let mut wire = BytesMut::new();
                for f in codec::frames(&msg, chunk) {
                    wire.extend_from_slice(&f);
                }
                let mut d = StreamDecoder::new(FRAME_BYTES_MAX, SNAPSHOT_BYTES_MAX);
                assert_eq!(
                    d.decode(&mut wire),
                    Ok(Some(msg)),
                    "frames() did not round-trip"
                );
                assert!(wire.is_empty() && !d.is_assembling());
            }
            Ok(None) => {
                assert_eq!(buf, before, "Ok(None) consumed input");
                return;
            }
            Err(CodecError::FrameTooLarge { len, max: m }) => {
                assert!(len > m);
                assert_eq!(buf, before, "a rejected frame was consumed");
                return;
            }
            Err(_) => return,
        }
    }
}

/// What a connection's decoder made of a byte stream: the messages, then
/// the error that ended it (if one did).
type Outcome = (Vec<Message>, Option<CodecError>);

/// Feeds `stream` to a fresh decoder, in pieces of the sizes in `cuts`
/// (cyclically; all at once if there are none or all are zero), draining
/// it after every piece as a connection does, until the end or an error.
fn run_stream(frame_max: usize, snap_max: u64, stream: &[u8], cuts: &[usize]) -> Outcome {
    let mut d = StreamDecoder::new(frame_max, snap_max);
    let mut buf = BytesMut::new();
    let mut msgs = Vec::new();
    let whole = cuts.iter().all(|&c| c == 0);
    let mut pos = 0;
    let mut i = 0;
    loop {
        let n = if whole {
            stream.len()
        } else {
            cuts[i % cuts.len()]
        };
        i += 1;
        let n = n.min(stream.len() - pos);
        buf.extend_from_slice(&stream[pos..pos + n]);
        pos += n;
        loop {
            let was_assembling = d.is_assembling();
            let before = buf.clone();
            match d.decode(&mut buf) {
                Ok(Some(msg)) => {
                    let used = &before[..before.len() - buf.len()];
                    if !was_assembling && used.get(4) != Some(&SNAPSHOT_BEGIN) {
                        // One frame, one message: canonical as in `decode`.
                        assert_eq!(
                            &codec::encode_to_bytes(&msg)[..],
                            used,
                            "decoded message is not canonical"
                        );
                    } else {
                        assert!(matches!(msg, Message::Snapshot { .. }));
                    }
                    assert!(!d.is_assembling());
                    msgs.push(msg);
                }
                Ok(None) => break,
                Err(e) => {
                    // Every error but a too-large length prefix drops the
                    // partial snapshot at once. That one leaves it in the
                    // decoder (`take_frame`'s error returns before the
                    // reset), which the connection then drops with it.
                    if !matches!(e, CodecError::FrameTooLarge { .. }) {
                        assert!(!d.is_assembling(), "a broken stream left its part behind");
                    }
                    return (msgs, Some(e));
                }
            }
        }
        if pos == stream.len() {
            return (msgs, None);
        }
    }
}

/// A peer connection's `StreamDecoder` under limits chosen by the first two
/// bytes, fed the rest once whole and once in pieces whose sizes the next
/// bytes give: both must yield the same messages and the same error.
pub fn core_stream(data: &[u8]) {
    let mut input = Input::new(data);
    let frame_maxes = [16, 64, 4096, FRAME_BYTES_MAX];
    let frame_max = frame_maxes[usize::from(input.u8()) % frame_maxes.len()];
    let snap_maxes = [0, 64, 4096, 1 << 20, SNAPSHOT_BYTES_MAX];
    let snap_max = snap_maxes[usize::from(input.u8()) % snap_maxes.len()];
    let ncuts = usize::from(input.u8() % 8);
    let cuts: Vec<usize> = (0..ncuts).map(|_| usize::from(input.u8())).collect();
    let stream = input.rest();
    let whole = run_stream(frame_max, snap_max, stream, &[]);
    let pieces = run_stream(frame_max, snap_max, stream, &cuts);
    assert_eq!(whole, pieces, "the result depends on how the bytes arrived");
}
