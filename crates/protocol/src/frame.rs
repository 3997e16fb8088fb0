//! Length-prefixed frames off a TCP stream: check that a whole frame is buffered, then hand it
//! out. The length is checked against the limit before any buffer grows for it.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Kafka's `socket.request.max.bytes` default.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 100 * 1024 * 1024;
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// The buffer grows to at most this many times what has arrived: a length alone costs little
/// (a client must send a quarter of what it makes the broker hold), while a 1 MiB frame is
/// copied twice as it grows rather than at every doubling from 64 KiB.
const GROWTH_FACTOR_MAX: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {0} is negative or above the limit {1}")]
    BadLength(i64, usize),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub struct FrameReader {
    buffer: BytesMut,
    frame_bytes_max: usize,
}

impl FrameReader {
    pub fn new(frame_bytes_max: usize) -> Self {
        FrameReader {
            buffer: BytesMut::with_capacity(READ_CHUNK_BYTES),
            frame_bytes_max,
        }
    }

    /// The next frame's payload, or `None` on a clean close between frames.
    pub async fn read_frame<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<Bytes>, FrameError> {
        loop {
            if let Some(frame) = self.parse_frame()? {
                return Ok(Some(frame));
            }
            let room = self
                .missing_bytes()
                .min(self.buffer.len().saturating_mul(GROWTH_FACTOR_MAX))
                .max(READ_CHUNK_BYTES);
            self.buffer.reserve(room);
            if reader.read_buf(&mut self.buffer).await? == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
        }
    }

    /// How many bytes the frame being read still lacks, once its (valid) length is known.
    fn missing_bytes(&self) -> usize {
        match self.buffer.get(..4) {
            Some(length) => {
                let length = i32::from_be_bytes(length.try_into().expect("4 bytes")) as usize;
                (4 + length).saturating_sub(self.buffer.len())
            }
            None => 0,
        }
    }

    fn parse_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let length = i32::from_be_bytes(self.buffer[..4].try_into().expect("4 bytes"));
        if length < 0 || length as usize > self.frame_bytes_max {
            return Err(FrameError::BadLength(length as i64, self.frame_bytes_max));
        }
        let length = length as usize;
        if self.buffer.len() < 4 + length {
            return Ok(None);
        }
        self.buffer.advance(4);
        Ok(Some(self.buffer.split_to(length).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], max: usize) -> Vec<Result<Option<Bytes>, String>> {
        let mut reader = FrameReader::new(max);
        let mut src = input;
        let mut out = Vec::new();
        loop {
            let r = reader.read_frame(&mut src).await.map_err(|e| e.to_string());
            let done = !matches!(r, Ok(Some(_)));
            out.push(r);
            if done {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn splits_frames_and_ends_cleanly() {
        let out = frames(&[0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0], 10).await;
        assert_eq!(out[0], Ok(Some(Bytes::from_static(b"ab"))));
        assert_eq!(out[1], Ok(Some(Bytes::new())));
        assert_eq!(out[2], Ok(None));
    }

    #[tokio::test]
    async fn rejects_oversized_and_negative_lengths_before_reading_them() {
        let out = frames(&[0x7f, 0xff, 0xff, 0xff], 100).await;
        assert!(out[0].as_ref().unwrap_err().contains("above the limit"));
        let out = frames(&[0xff, 0xff, 0xff, 0xff], 100).await;
        assert!(out[0].is_err());
    }

    #[tokio::test]
    async fn truncated_frame_is_an_error() {
        let out = frames(&[0, 0, 0, 5, 1, 2], 100).await;
        assert!(out[0].as_ref().unwrap_err().contains("middle of a frame"));
    }
}
