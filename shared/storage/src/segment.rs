//! The segment codec: samples of many series packed into one compressed blob.
//!
//! A segment holds, for one tenant, one time bucket and one shard, the samples
//! one write brought. Both hot stores keep segments as values (a redb row
//! locally, a DynamoDB item on AWS), which is what keeps writes cheap: one item
//! per (request × shard × bucket) instead of one per sample or series.
//!
//! Layout (version 1), before zstd compression:
//! `version u8 | n_series uvarint | base_t zigzag-varint |` then per series, sorted
//! by id: `id delta uvarint | n uvarint | first t - base_t zigzag | n-1 t deltas as
//! zigzag delta-of-delta | n values as u64 LE of (bits XOR previous bits)`.

use ember_model::Sample;

/// Current segment format version.
pub const SEGMENT_VERSION: u8 = 1;

/// Samples of one series inside a segment, identified by its series id.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentSeries {
    /// The tenant-wide series id (see the series index).
    pub series_id: u64,
    /// Samples sorted by time.
    pub samples: Vec<Sample>,
}

/// A segment could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// zstd failed.
    #[error("decompressing segment: {0}")]
    Decompress(#[from] std::io::Error),
    /// The bytes do not form a valid segment.
    #[error("corrupt segment: {0}")]
    Corrupt(&'static str),
    /// Written by a newer version of Ember.
    #[error("unsupported segment version {0}")]
    Version(u8),
}

/// Encodes series (any order; samples sorted per series) into a compressed segment.
pub fn encode(series: &mut [SegmentSeries]) -> Vec<u8> {
    series.sort_by_key(|s| s.series_id);
    let base_t = series.iter().filter_map(|s| s.samples.first()).map(|s| s.t).min().unwrap_or(0);
    let mut buf = Vec::with_capacity(16 + series.iter().map(|s| 3 + s.samples.len() * 10).sum::<usize>());
    buf.push(SEGMENT_VERSION);
    put_uvarint(&mut buf, series.len() as u64);
    put_varint(&mut buf, base_t);
    let mut prev_id = 0u64;
    for s in series.iter() {
        put_uvarint(&mut buf, s.series_id - prev_id);
        prev_id = s.series_id;
        put_uvarint(&mut buf, s.samples.len() as u64);
        let (mut prev_t, mut prev_delta) = (base_t, 0i64);
        for (i, smp) in s.samples.iter().enumerate() {
            if i == 0 {
                put_varint(&mut buf, smp.t - base_t);
            } else {
                let delta = smp.t - prev_t;
                put_varint(&mut buf, delta - prev_delta);
                prev_delta = delta;
            }
            prev_t = smp.t;
        }
        let mut prev_bits = 0u64;
        for smp in &s.samples {
            let bits = smp.v.to_bits();
            buf.extend_from_slice(&(bits ^ prev_bits).to_le_bytes());
            prev_bits = bits;
        }
    }
    // zstd on an in-memory buffer cannot fail except on allocation failure.
    zstd::bulk::compress(&buf, 3).unwrap_or_else(|_| buf.clone())
}

/// Decodes a segment written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Vec<SegmentSeries>, SegmentError> {
    let raw = zstd::stream::decode_all(bytes)?;
    let mut r = Reader { buf: &raw, pos: 0 };
    let version = r.byte()?;
    if version != SEGMENT_VERSION {
        return Err(SegmentError::Version(version));
    }
    let n_series = r.uvarint()? as usize;
    if n_series > raw.len() {
        return Err(SegmentError::Corrupt("series count exceeds segment size"));
    }
    let base_t = r.varint()?;
    let mut out = Vec::with_capacity(n_series);
    let mut id = 0u64;
    for _ in 0..n_series {
        id = id.checked_add(r.uvarint()?).ok_or(SegmentError::Corrupt("series id overflow"))?;
        let n = r.uvarint()? as usize;
        if n > raw.len() {
            return Err(SegmentError::Corrupt("sample count exceeds segment size"));
        }
        let mut samples = Vec::with_capacity(n);
        let (mut t, mut delta) = (base_t, 0i64);
        for i in 0..n {
            if i == 0 {
                t = base_t.wrapping_add(r.varint()?);
            } else {
                delta = delta.wrapping_add(r.varint()?);
                t = t.wrapping_add(delta);
            }
            samples.push(Sample::new(t, 0.0));
        }
        let mut prev_bits = 0u64;
        for s in samples.iter_mut() {
            let bits = r.u64_le()? ^ prev_bits;
            s.v = f64::from_bits(bits);
            prev_bits = bits;
        }
        out.push(SegmentSeries { series_id: id, samples });
    }
    Ok(out)
}

/// Appends an unsigned LEB128 varint.
pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends a zigzag-encoded signed varint.
pub fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, SegmentError> {
        let b = *self.buf.get(self.pos).ok_or(SegmentError::Corrupt("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn uvarint(&mut self) -> Result<u64, SegmentError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(SegmentError::Corrupt("varint too long"))
    }

    fn varint(&mut self) -> Result<i64, SegmentError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn u64_le(&mut self) -> Result<u64, SegmentError> {
        let end = self.pos + 8;
        let bytes = self.buf.get(self.pos..end).ok_or(SegmentError::Corrupt("truncated value"))?;
        self.pos = end;
        let mut a = [0u8; 8];
        a.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_model::stale_nan;

    #[test]
    fn round_trip_keeps_every_bit() {
        let mut input = vec![
            SegmentSeries { series_id: 42, samples: vec![Sample::new(1_000, 1.5), Sample::new(16_000, stale_nan())] },
            SegmentSeries {
                series_id: 7,
                samples: vec![Sample::new(-5, f64::NAN), Sample::new(0, f64::INFINITY), Sample::new(30, -0.0)],
            },
            SegmentSeries { series_id: 8, samples: vec![] },
        ];
        let bytes = encode(&mut input);
        let out = decode(&bytes).unwrap();
        assert_eq!(out.len(), 3);
        for (a, b) in input.iter().zip(&out) {
            assert_eq!(a.series_id, b.series_id);
            let bits = |s: &[Sample]| s.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
            assert_eq!(bits(&a.samples), bits(&b.samples));
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(b"not zstd").is_err());
        let truncated = zstd::bulk::compress(&[1u8, 5, 0, 1], 1).unwrap();
        assert!(decode(&truncated).is_err());
    }
}
