//! The data object format, version 1: the stream ranges' bytes back to back, an index of
//! `(stream, start, end, position, size, crc)` entries, and a fixed footer naming the index with
//! a magic number and checksums. Self-describing: an object can be read without metadata.
//! Documented in `docs/formats.md`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const MAGIC: u64 = u64::from_be_bytes(*b"STRATAOB");
pub const VERSION: u16 = 1;
/// `index position u64 | index size u32 | index crc u32 | entry count u32 | version u16 | pad u16 | magic u64`.
pub const FOOTER_BYTES: usize = 8 + 4 + 4 + 4 + 2 + 2 + 8;
const ENTRY_BYTES: usize = 8 + 8 + 8 + 8 + 8 + 8 + 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub stream_id: u64,
    pub start_offset: i64,
    pub end_offset: i64,
    pub max_timestamp_ms: i64,
    pub position: u64,
    pub size_bytes: u64,
    /// CRC32C of the range's bytes.
    pub crc: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("object is {0} bytes, too short for a footer")]
    TooShort(usize),
    #[error("bad magic {0:#x}")]
    BadMagic(u64),
    #[error("unsupported object version {0}")]
    Version(u16),
    #[error("index checksum mismatch")]
    IndexCrc,
    #[error("index out of bounds")]
    Bounds,
}

/// Builds an object range by range. The ranges' batches are kept by reference, not copied: the
/// object goes to the store as a list of chunks (the batches, then the index and footer), so an
/// upload costs no copy of its data and no fresh memory to hold one.
#[derive(Default)]
pub struct ObjectBuilder {
    chunks: Vec<Bytes>,
    data_bytes: usize,
    entries: Vec<IndexEntry>,
}

impl ObjectBuilder {
    /// Appends one stream's contiguous range, given as its batches in offset order.
    pub fn add_range(
        &mut self,
        stream_id: u64,
        start_offset: i64,
        end_offset: i64,
        max_timestamp_ms: i64,
        batches: &[Bytes],
    ) -> &IndexEntry {
        let position = self.data_bytes;
        let mut crc = 0;
        for batch in batches {
            crc = crc32c::crc32c_append(crc, batch);
            self.data_bytes += batch.len();
            self.chunks.push(batch.clone());
        }
        self.entries.push(IndexEntry {
            stream_id,
            start_offset,
            end_offset,
            max_timestamp_ms,
            position: position as u64,
            size_bytes: (self.data_bytes - position) as u64,
            crc,
        });
        self.entries.last().expect("just pushed")
    }

    pub fn data_bytes(&self) -> usize {
        self.data_bytes
    }

    /// The object as chunks to write back to back, and its index.
    pub fn finish(self) -> (Vec<Bytes>, Vec<IndexEntry>) {
        let mut out = BytesMut::with_capacity(self.entries.len() * ENTRY_BYTES + FOOTER_BYTES);
        for e in &self.entries {
            out.put_u64(e.stream_id);
            out.put_i64(e.start_offset);
            out.put_i64(e.end_offset);
            out.put_i64(e.max_timestamp_ms);
            out.put_u64(e.position);
            out.put_u64(e.size_bytes);
            out.put_u32(e.crc);
        }
        let index_size = out.len() as u32;
        let index_crc = crc32c::crc32c(&out);
        out.put_u64(self.data_bytes as u64);
        out.put_u32(index_size);
        out.put_u32(index_crc);
        out.put_u32(self.entries.len() as u32);
        out.put_u16(VERSION);
        out.put_u16(0);
        out.put_u64(MAGIC);
        let mut chunks = self.chunks;
        chunks.push(out.freeze());
        (chunks, self.entries)
    }
}

/// The chunks of an object as one buffer.
#[cfg(test)]
pub fn concat(chunks: &[Bytes]) -> Bytes {
    let mut out = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
    for chunk in chunks {
        out.extend_from_slice(chunk);
    }
    out.freeze()
}

/// Where the index is, from the footer: `(index position, index size, index crc, entry count)`.
pub fn parse_footer(footer: &[u8]) -> Result<(u64, usize, u32, usize), FormatError> {
    if footer.len() != FOOTER_BYTES {
        return Err(FormatError::TooShort(footer.len()));
    }
    let mut footer = footer;
    let index_position = footer.get_u64();
    let index_size = footer.get_u32() as usize;
    let index_crc = footer.get_u32();
    let count = footer.get_u32() as usize;
    let version = footer.get_u16();
    footer.get_u16();
    let magic = footer.get_u64();
    if magic != MAGIC {
        return Err(FormatError::BadMagic(magic));
    }
    if version != VERSION {
        return Err(FormatError::Version(version));
    }
    if index_size != count * ENTRY_BYTES {
        return Err(FormatError::Bounds);
    }
    Ok((index_position, index_size, index_crc, count))
}

pub fn parse_index(
    mut index: &[u8],
    crc: u32,
    count: usize,
) -> Result<Vec<IndexEntry>, FormatError> {
    if index.len() != count * ENTRY_BYTES {
        return Err(FormatError::Bounds);
    }
    if crc32c::crc32c(index) != crc {
        return Err(FormatError::IndexCrc);
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        entries.push(IndexEntry {
            stream_id: index.get_u64(),
            start_offset: index.get_i64(),
            end_offset: index.get_i64(),
            max_timestamp_ms: index.get_i64(),
            position: index.get_u64(),
            size_bytes: index.get_u64(),
            crc: index.get_u32(),
        });
    }
    Ok(entries)
}

/// Reads the index of a whole object held in memory.
pub fn read_index(object: &Bytes) -> Result<Vec<IndexEntry>, FormatError> {
    if object.len() < FOOTER_BYTES {
        return Err(FormatError::TooShort(object.len()));
    }
    let footer_at = object.len() - FOOTER_BYTES;
    let (position, size, crc, count) = parse_footer(&object[footer_at..])?;
    let end = (position as usize)
        .checked_add(size)
        .ok_or(FormatError::Bounds)?;
    if end > footer_at {
        return Err(FormatError::Bounds);
    }
    parse_index(&object[position as usize..end], crc, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_round_trips_and_detects_damage() {
        let mut b = ObjectBuilder::default();
        b.add_range(
            1,
            0,
            3,
            10,
            &[Bytes::from_static(b"aaa"), Bytes::from_static(b"bb")],
        );
        b.add_range(9, 100, 101, 20, &[Bytes::from_static(b"c")]);
        let (chunks, entries) = b.finish();
        let object = concat(&chunks);
        assert_eq!(read_index(&object).unwrap(), entries);
        assert_eq!(entries[0].crc, crc32c::crc32c(b"aaabb"));
        assert_eq!(&object[entries[1].position as usize..][..1], b"c");
        assert_eq!(entries[0].size_bytes, 5);

        let mut damaged = BytesMut::from(&object[..]);
        damaged[6] ^= 1; // inside the index
        assert!(matches!(
            read_index(&damaged.freeze()),
            Err(FormatError::IndexCrc)
        ));
        assert!(read_index(&object.slice(1..)).is_err());
    }
}
