//! The segment codec: samples of many series packed into one compressed blob.
//!
//! A segment holds, for one tenant, one time bucket and one shard, the samples
//! one write brought. Both hot stores keep segments as values (a redb row
//! locally, a DynamoDB item on AWS), which is what keeps writes cheap: one item
//! per (request × shard × bucket) instead of one per sample or series.
//!
//! Framing (written now): `3 u8 | min t zigzag-varint | max t zigzag-varint | zstd frame`,
//! the sample-time range uncompressed so a reader skips segments outside its query
//! window ([`time_range`]); segments written before carry the bare zstd frame.
//!
//! Layout (version 2, written now), before zstd compression, columnar so that zstd sees
//! alike bytes together (ids that step by one, timestamps shared by a scrape, value
//! headers that repeat):
//! `version u8 = 2 | n_series uvarint | base_t zigzag-varint | len(ids) uvarint |
//! len(times) uvarint | len(heads) uvarint | ids | times | heads | bodies` where, per
//! series sorted by id, `ids` holds the id delta (uvarint), `times` the chunk's time part
//! (`n`, first t - base_t, delta-of-deltas), `heads` the value header (mode and exponent,
//! absent when n = 0) and `bodies` the values, all as in the chunk format below.
//!
//! Layout (version 1, still decoded): `version u8 = 1 | n_series uvarint | base_t
//! zigzag-varint |` then per series, sorted by id: `id delta uvarint | n uvarint | first
//! t - base_t zigzag | n-1 t deltas as zigzag delta-of-delta | n values as u64 LE of
//! (bits XOR previous bits)`.
//!
//! The chunk format (shared with the cold Parquet blocks' `s_chunk` column):
//! `n uvarint |` if `n > 0`: `first t - base zigzag | n-1 zigzag delta-of-delta of t |
//! value mode u8 |` then by mode:
//! - `0` XOR: n × u64 LE of (bits XOR previous bits);
//! - `1` decimal delta: `e u8 |` n × zigzag varint of `m[i] - m[i-1]` (m[-1] = 0)
//!   where `v[i] = m[i] / 10^e` exactly (bit for bit);
//! - `2` decimal delta-of-delta: `e u8 |` n × zigzag varint of the second difference;
//! - `3` constant: one u64 LE, the bits of every value.
//!
//! Decimal modes turn the values Prometheus usually sees (integer counters, gauges with
//! a few decimals) into small varints, which is what keeps DynamoDB and Parquet bytes
//! per sample low; anything else (NaN, staleness markers, -0.0, arbitrary floats) falls
//! back to XOR, so every value round-trips bit for bit.

use ember_model::Sample;

/// Current segment format version (versions 1 and 2 are decoded).
pub const SEGMENT_VERSION: u8 = 2;

/// Largest decimal exponent tried by the decimal value modes.
const MAX_DECIMAL_EXP: u8 = 9;

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
    let base_t = series
        .iter()
        .filter_map(|s| s.samples.first())
        .map(|s| s.t)
        .min()
        .unwrap_or(0);
    let total: usize = series.iter().map(|s| s.samples.len()).sum();
    let (mut ids, mut ts, mut heads, mut bodies) = (
        Vec::with_capacity(series.len() * 2),
        Vec::with_capacity(series.len() * 3 + total),
        Vec::with_capacity(series.len() * 2),
        Vec::with_capacity(total * 3),
    );
    let mut prev_id = 0u64;
    for s in series.iter() {
        put_uvarint(&mut ids, s.series_id - prev_id);
        prev_id = s.series_id;
        encode_times(&s.samples, base_t, &mut ts);
        if !s.samples.is_empty() {
            encode_values(&s.samples, &mut heads, &mut bodies);
        }
    }
    let mut buf = Vec::with_capacity(32 + ids.len() + ts.len() + heads.len() + bodies.len());
    buf.push(SEGMENT_VERSION);
    put_uvarint(&mut buf, series.len() as u64);
    put_varint(&mut buf, base_t);
    put_uvarint(&mut buf, ids.len() as u64);
    put_uvarint(&mut buf, ts.len() as u64);
    put_uvarint(&mut buf, heads.len() as u64);
    for part in [&ids, &ts, &heads, &bodies] {
        buf.extend_from_slice(part);
    }
    // The time range goes in front, uncompressed, so readers skip segments outside a query
    // window without decompressing them (an instant query reads minutes of an hour bucket).
    let (min_t, max_t) = series
        .iter()
        .filter_map(|s| Some((s.samples.first()?.t, s.samples.last()?.t)))
        .fold((i64::MAX, i64::MIN), |(lo, hi), (a, b)| {
            (lo.min(a), hi.max(b))
        });
    let (min_t, max_t) = if min_t > max_t {
        (0, -1)
    } else {
        (min_t, max_t)
    };
    let mut out = Vec::with_capacity(24 + buf.len() / 2);
    out.push(FRAMED_MARKER);
    put_varint(&mut out, min_t);
    put_varint(&mut out, max_t);
    // zstd on an in-memory buffer cannot fail except on allocation failure.
    match zstd::bulk::compress(&buf, 3) {
        Ok(z) => out.extend_from_slice(&z),
        Err(_) => return zstd::stream::encode_all(&buf[..], 3).unwrap_or(buf),
    }
    out
}

/// First byte of a segment with the uncompressed time-range header (written now). Older
/// segments are a bare zstd frame, whose first byte is 0x28 (or 0x5_ for skippable frames),
/// so the two never collide.
const FRAMED_MARKER: u8 = 3;

/// The `[min, max]` sample time of a segment from its header, without decompressing it:
/// `Ok(None)` for segments written before the header existed (read them whole). An
/// empty segment reports `min > max`.
pub fn time_range(bytes: &[u8]) -> Result<Option<(i64, i64)>, SegmentError> {
    Ok(split_header(bytes)?.0)
}

/// A segment's `[min, max]` sample time, when its header carries one.
type TimeRange = Option<(i64, i64)>;

/// Splits a segment into its optional time-range header and the zstd payload.
fn split_header(bytes: &[u8]) -> Result<(TimeRange, &[u8]), SegmentError> {
    if bytes.first() != Some(&FRAMED_MARKER) {
        return Ok((None, bytes));
    }
    let mut r = Reader { buf: bytes, pos: 1 };
    let min_t = r.varint()?;
    let max_t = r.varint()?;
    Ok((Some((min_t, max_t)), &bytes[r.pos..]))
}

/// Appends the samples of one series (sorted by time) in the chunk format described in
/// the module docs, timestamps relative to `base_t`.
pub fn encode_chunk(samples: &[Sample], base_t: i64, buf: &mut Vec<u8>) {
    encode_times(samples, base_t, buf);
    if !samples.is_empty() {
        let mut body = Vec::with_capacity(samples.len() * 3);
        encode_values(samples, buf, &mut body);
        buf.extend_from_slice(&body);
    }
}

/// `n uvarint | first t - base zigzag | n-1 zigzag delta-of-delta`.
fn encode_times(samples: &[Sample], base_t: i64, buf: &mut Vec<u8>) {
    put_uvarint(buf, samples.len() as u64);
    let Some(first) = samples.first() else {
        return;
    };
    put_varint(buf, first.t.wrapping_sub(base_t));
    let (mut prev_t, mut prev_delta) = (first.t, 0i64);
    for smp in &samples[1..] {
        let delta = smp.t.wrapping_sub(prev_t);
        put_varint(buf, delta.wrapping_sub(prev_delta));
        prev_delta = delta;
        prev_t = smp.t;
    }
}

/// Value mode header (`mode u8`, plus `e u8` for decimal modes) into `head`, the values
/// themselves into `body`. `samples` must not be empty.
fn encode_values(samples: &[Sample], head: &mut Vec<u8>, body: &mut Vec<u8>) {
    let first_bits = samples[0].v.to_bits();
    if samples.iter().all(|s| s.v.to_bits() == first_bits) {
        head.push(3);
        body.extend_from_slice(&first_bits.to_le_bytes());
        return;
    }
    if let Some((e, mantissas)) = decimal_mantissas(samples) {
        let mut delta = Vec::with_capacity(mantissas.len() * 2);
        let mut dod = Vec::with_capacity(mantissas.len() * 2);
        let (mut prev, mut prev_d) = (0i64, 0i64);
        for &m in &mantissas {
            let d = m.wrapping_sub(prev);
            put_varint(&mut delta, d);
            put_varint(&mut dod, d.wrapping_sub(prev_d));
            prev = m;
            prev_d = d;
        }
        let (mode, bytes) = if dod.len() < delta.len() {
            (2u8, dod)
        } else {
            (1u8, delta)
        };
        head.push(mode);
        head.push(e);
        body.extend_from_slice(&bytes);
        return;
    }
    head.push(0);
    let mut prev_bits = 0u64;
    for smp in samples {
        let bits = smp.v.to_bits();
        body.extend_from_slice(&(bits ^ prev_bits).to_le_bytes());
        prev_bits = bits;
    }
}

/// The smallest exponent `e` and integers `m` with `m / 10^e == v` bit for bit for every
/// value, if there is one.
fn decimal_mantissas(samples: &[Sample]) -> Option<(u8, Vec<i64>)> {
    const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53: integers exactly representable
    'exp: for e in 0..=MAX_DECIMAL_EXP {
        let scale = 10f64.powi(i32::from(e));
        let mut out = Vec::with_capacity(samples.len());
        for s in samples {
            let scaled = (s.v * scale).round();
            if !scaled.is_finite() || scaled.abs() > LIMIT {
                return None;
            }
            let m = scaled as i64;
            if ((m as f64) / scale).to_bits() != s.v.to_bits() {
                continue 'exp;
            }
            out.push(m);
        }
        return Some((e, out));
    }
    None
}

/// Decodes one chunk written by [`encode_chunk`] starting at `*pos`, advancing `*pos`.
pub fn decode_chunk(
    bytes: &[u8],
    pos: &mut usize,
    base_t: i64,
) -> Result<Vec<Sample>, SegmentError> {
    let mut r = Reader {
        buf: bytes,
        pos: *pos,
    };
    let samples = read_chunk(&mut r, base_t)?;
    *pos = r.pos;
    Ok(samples)
}

fn read_chunk(r: &mut Reader<'_>, base_t: i64) -> Result<Vec<Sample>, SegmentError> {
    let mut samples = read_times(r, base_t)?;
    if !samples.is_empty() {
        read_values(r, None, &mut samples)?;
    }
    Ok(samples)
}

fn read_times(r: &mut Reader<'_>, base_t: i64) -> Result<Vec<Sample>, SegmentError> {
    let n = r.uvarint()? as usize;
    if n > r.buf.len().saturating_sub(r.pos) {
        return Err(SegmentError::Corrupt("sample count exceeds chunk size"));
    }
    let mut samples = Vec::with_capacity(n);
    if n == 0 {
        return Ok(samples);
    }
    let mut t = base_t.wrapping_add(r.varint()?);
    samples.push(Sample::new(t, 0.0));
    let mut delta = 0i64;
    for _ in 1..n {
        delta = delta.wrapping_add(r.varint()?);
        t = t.wrapping_add(delta);
        samples.push(Sample::new(t, 0.0));
    }
    Ok(samples)
}

/// Reads the value header from `head` and the values from `body` (or from `head` too,
/// in the chunk format where they follow each other).
fn read_values<'a>(
    head: &mut Reader<'a>,
    mut body: Option<&mut Reader<'a>>,
    samples: &mut [Sample],
) -> Result<(), SegmentError> {
    let mode = head.byte()?;
    let e = if mode == 1 || mode == 2 {
        head.byte()?
    } else {
        0
    };
    let r: &mut Reader<'a> = match body.as_mut() {
        Some(b) => b,
        None => head,
    };
    match mode {
        0 => {
            let mut prev_bits = 0u64;
            for s in samples.iter_mut() {
                let bits = r.u64_le()? ^ prev_bits;
                s.v = f64::from_bits(bits);
                prev_bits = bits;
            }
        }
        1 | 2 => {
            if e > MAX_DECIMAL_EXP {
                return Err(SegmentError::Corrupt("decimal exponent out of range"));
            }
            let scale = 10f64.powi(i32::from(e));
            let (mut m, mut d) = (0i64, 0i64);
            for s in samples.iter_mut() {
                let x = r.varint()?;
                if mode == 1 {
                    d = x;
                } else {
                    d = d.wrapping_add(x);
                }
                m = m.wrapping_add(d);
                s.v = (m as f64) / scale;
            }
        }
        3 => {
            let v = f64::from_bits(r.u64_le()?);
            for s in samples.iter_mut() {
                s.v = v;
            }
        }
        _ => return Err(SegmentError::Corrupt("unknown value mode")),
    }
    Ok(())
}

/// Decodes a segment (any version) into its series, sorted by id.
pub fn decode(bytes: &[u8]) -> Result<Vec<SegmentSeries>, SegmentError> {
    let (_, payload) = split_header(bytes)?;
    let raw = zstd::stream::decode_all(payload)?;
    let mut r = Reader { buf: &raw, pos: 0 };
    let version = r.byte()?;
    if version != 1 && version != 2 {
        return Err(SegmentError::Version(version));
    }
    let n_series = r.uvarint()? as usize;
    if n_series > raw.len() {
        return Err(SegmentError::Corrupt("series count exceeds segment size"));
    }
    let base_t = r.varint()?;
    if version == 2 {
        return decode_v2(&raw, r, n_series, base_t);
    }
    let mut out = Vec::with_capacity(n_series);
    let mut id = 0u64;
    for _ in 0..n_series {
        id = id
            .checked_add(r.uvarint()?)
            .ok_or(SegmentError::Corrupt("series id overflow"))?;
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
        out.push(SegmentSeries {
            series_id: id,
            samples,
        });
    }
    Ok(out)
}

fn decode_v2(
    raw: &[u8],
    mut r: Reader<'_>,
    n_series: usize,
    base_t: i64,
) -> Result<Vec<SegmentSeries>, SegmentError> {
    let lens = [r.uvarint()?, r.uvarint()?, r.uvarint()?];
    let mut start = r.pos;
    let mut parts = Vec::with_capacity(4);
    for len in lens {
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|e| *e <= raw.len())
            .ok_or(SegmentError::Corrupt("segment stream length"))?;
        parts.push(&raw[start..end]);
        start = end;
    }
    parts.push(&raw[start..]);
    let mut ids = Reader {
        buf: parts[0],
        pos: 0,
    };
    let mut ts = Reader {
        buf: parts[1],
        pos: 0,
    };
    let mut heads = Reader {
        buf: parts[2],
        pos: 0,
    };
    let mut bodies = Reader {
        buf: parts[3],
        pos: 0,
    };
    let mut out = Vec::with_capacity(n_series);
    let mut id = 0u64;
    for _ in 0..n_series {
        id = id
            .checked_add(ids.uvarint()?)
            .ok_or(SegmentError::Corrupt("series id overflow"))?;
        let mut samples = read_times(&mut ts, base_t)?;
        if !samples.is_empty() {
            read_values(&mut heads, Some(&mut bodies), &mut samples)?;
        }
        out.push(SegmentSeries {
            series_id: id,
            samples,
        });
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
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(SegmentError::Corrupt("truncated"))?;
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
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(SegmentError::Corrupt("truncated value"))?;
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
    fn unframed_segments_still_decode_and_have_no_range() {
        let mut input = vec![SegmentSeries {
            series_id: 1,
            samples: vec![Sample::new(10, 1.0), Sample::new(20, 2.0)],
        }];
        let framed = encode(&mut input);
        let (range, payload) = split_header(&framed).unwrap();
        assert_eq!(range, Some((10, 20)));
        // What segments looked like before the header: the bare zstd frame.
        let legacy = payload.to_vec();
        assert_eq!(time_range(&legacy).unwrap(), None);
        assert_eq!(decode(&legacy).unwrap(), decode(&framed).unwrap());
        let mut empty: Vec<SegmentSeries> = Vec::new();
        let (lo, hi) = time_range(&encode(&mut empty)).unwrap().unwrap();
        assert!(lo > hi);
    }

    #[test]
    fn round_trip_keeps_every_bit() {
        let mut input = vec![
            SegmentSeries {
                series_id: 42,
                samples: vec![Sample::new(1_000, 1.5), Sample::new(16_000, stale_nan())],
            },
            SegmentSeries {
                series_id: 7,
                samples: vec![
                    Sample::new(-5, f64::NAN),
                    Sample::new(0, f64::INFINITY),
                    Sample::new(30, -0.0),
                ],
            },
            SegmentSeries {
                series_id: 8,
                samples: vec![],
            },
        ];
        let bytes = encode(&mut input);
        assert_eq!(time_range(&bytes).unwrap(), Some((-5, 16_000)));
        let out = decode(&bytes).unwrap();
        assert_eq!(out.len(), 3);
        for (a, b) in input.iter().zip(&out) {
            assert_eq!(a.series_id, b.series_id);
            let bits = |s: &[Sample]| s.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
            assert_eq!(bits(&a.samples), bits(&b.samples));
        }
    }

    fn bits(s: &[Sample]) -> Vec<(i64, u64)> {
        s.iter().map(|s| (s.t, s.v.to_bits())).collect()
    }

    #[test]
    fn every_value_mode_round_trips() {
        let ts = |n: usize| {
            (0..n)
                .map(|i| 1_700_000_000_000 + i as i64 * 15_000 + (i as i64 % 3))
                .collect::<Vec<_>>()
        };
        let cases: Vec<Vec<f64>> = vec![
            vec![7.0; 50],                                        // constant
            (0..50).map(|i| (i * 1000 + i * i) as f64).collect(), // integer counter
            (0..50).map(|i| i as f64 * 0.25 - 3.0).collect(),     // decimal gauge
            (0..50).map(|i| (i as f64).sin()).collect(),          // arbitrary floats
            vec![
                1.0,
                f64::NAN,
                stale_nan(),
                -0.0,
                f64::INFINITY,
                1e300,
                -1e-300,
                5e-324,
            ],
            vec![0.1 + 0.2, 0.3, 1e15, 123_456_789.123],
            vec![-9_007_199_254_740_992.0, 9_007_199_254_740_992.0],
        ];
        for values in cases {
            let samples: Vec<Sample> = ts(values.len())
                .into_iter()
                .zip(values)
                .map(|(t, v)| Sample::new(t, v))
                .collect();
            for base in [0, 1_700_000_000_000, i64::MIN] {
                let mut buf = Vec::new();
                encode_chunk(&samples, base, &mut buf);
                let mut pos = 0;
                let back = decode_chunk(&buf, &mut pos, base).unwrap();
                assert_eq!(pos, buf.len());
                assert_eq!(bits(&samples), bits(&back));
            }
        }
    }

    #[test]
    fn pseudo_random_segments_round_trip() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200 {
            let n_series = (next() % 20) as usize;
            let mut input: Vec<SegmentSeries> = (0..n_series)
                .map(|i| {
                    let n = (next() % 30) as usize;
                    let mut t = (next() % 1_000_000) as i64 - 500_000;
                    let samples = (0..n)
                        .map(|_| {
                            t += (next() % 20_000) as i64 + 1;
                            let v = match next() % 4 {
                                0 => f64::from_bits(next()),
                                1 => (next() % 1000) as f64,
                                2 => (next() % 1000) as f64 / 100.0,
                                _ => -((next() % 7) as f64),
                            };
                            Sample::new(t, v)
                        })
                        .collect();
                    SegmentSeries {
                        series_id: i as u64 * 3 + next() % 3,
                        samples,
                    }
                })
                .collect();
            input.sort_by_key(|s| s.series_id);
            input.dedup_by_key(|s| s.series_id);
            let bytes = encode(&mut input);
            let out = decode(&bytes).unwrap();
            assert_eq!(out.len(), input.len());
            for (a, b) in input.iter().zip(&out) {
                assert_eq!(a.series_id, b.series_id);
                assert_eq!(bits(&a.samples), bits(&b.samples));
            }
        }
    }

    /// Version 1 segments (written before the decimal modes) still decode.
    #[test]
    fn version_1_still_decodes() {
        let samples = [
            Sample::new(1_000, 1.5),
            Sample::new(16_000, f64::NAN),
            Sample::new(31_001, 2.0),
        ];
        let mut raw = vec![1u8];
        put_uvarint(&mut raw, 1);
        put_varint(&mut raw, 1_000);
        put_uvarint(&mut raw, 9);
        put_uvarint(&mut raw, 3);
        put_varint(&mut raw, 0);
        put_varint(&mut raw, 15_000);
        put_varint(&mut raw, 1);
        let mut prev = 0u64;
        for s in &samples {
            raw.extend_from_slice(&(s.v.to_bits() ^ prev).to_le_bytes());
            prev = s.v.to_bits();
        }
        let out = decode(&zstd::bulk::compress(&raw, 1).unwrap()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].series_id, 9);
        assert_eq!(bits(&out[0].samples), bits(&samples));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(b"not zstd").is_err());
        let truncated = zstd::bulk::compress(&[1u8, 5, 0, 1], 1).unwrap();
        assert!(decode(&truncated).is_err());
    }
}
