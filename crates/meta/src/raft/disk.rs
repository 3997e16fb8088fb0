//! Durable-file helpers shared by the log store and the snapshot: CRC32C frames, atomic file
//! replacement and running blocking I/O off the async runtime.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Bytes before each frame's body: little-endian body length, then CRC32C of the body.
const HEADER: usize = 8;

/// Metadata entries are small, so a longer length field means a torn or corrupt frame. Writers
/// refuse bodies above it too, so that everything written can be read back.
pub(crate) const MAX_FRAME: usize = 64 << 20;

pub(crate) fn encode_frame(out: &mut Vec<u8>, body: &[u8]) -> io::Result<()> {
    if body.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes exceeds {MAX_FRAME}", body.len()),
        ));
    }
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// The first frame of `buf`: its body and the bytes it spans. `None` if the frame is torn,
/// oversized or fails its checksum; whatever follows it cannot be trusted either.
pub(crate) fn decode_frame(buf: &[u8]) -> Option<(&[u8], usize)> {
    let header = buf.get(..HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len > MAX_FRAME {
        return None;
    }
    let body = buf.get(HEADER..HEADER + len)?;
    (crc32c::crc32c(body) == crc).then_some((body, HEADER + len))
}

/// Reads a file, treating a missing one as empty.
pub(crate) fn read_or_empty(path: &Path) -> io::Result<Vec<u8>> {
    match fs::read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        other => other,
    }
}

/// Replaces `dir/name` so that a crash leaves either the old or the new contents, never a mix.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Makes creations and renames inside `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Runs file I/O on the blocking pool: an fsync can take milliseconds and must not stall the
/// runtime's workers (nor Raft's heartbeats on them).
pub(crate) async fn blocking<T, F>(f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_reject_damage() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, b"hello").unwrap();
        let (body, n) = decode_frame(&buf).unwrap();
        assert_eq!((body, n), (&b"hello"[..], buf.len()));

        assert!(decode_frame(&buf[..buf.len() - 1]).is_none(), "torn");
        let mut flipped = buf.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(decode_frame(&flipped).is_none(), "checksum");
        let mut huge = buf.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_frame(&huge).is_none(), "absurd length");
    }
}
