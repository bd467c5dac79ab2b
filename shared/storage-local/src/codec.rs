//! Compact binary encodings of labels and metadata for the redb tables.

use ember_model::{Label, Labels, MetricMetadata, MetricType};
use ember_storage::segment::put_uvarint;

/// A stored value that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("corrupt stored value: {0}")]
pub struct CorruptValue(&'static str);

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_uvarint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn uvarint(&mut self) -> Result<u64, CorruptValue> {
        let mut v = 0u64;
        for (i, shift) in (0..64).step_by(7).enumerate() {
            let b = *self.0.get(i).ok_or(CorruptValue("truncated varint"))?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                self.0 = &self.0[i + 1..];
                return Ok(v);
            }
        }
        Err(CorruptValue("varint too long"))
    }

    fn str(&mut self) -> Result<&'a str, CorruptValue> {
        let n = usize::try_from(self.uvarint()?).map_err(|_| CorruptValue("length"))?;
        if n > self.0.len() {
            return Err(CorruptValue("truncated string"));
        }
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        std::str::from_utf8(s).map_err(|_| CorruptValue("invalid utf-8"))
    }
}

/// Encodes a label set.
pub fn encode_labels(labels: &Labels) -> Vec<u8> {
    let mut buf = Vec::with_capacity(
        labels
            .iter()
            .map(|l| l.name.len() + l.value.len() + 2)
            .sum::<usize>()
            + 1,
    );
    put_uvarint(&mut buf, labels.len() as u64);
    for l in labels {
        put_str(&mut buf, &l.name);
        put_str(&mut buf, &l.value);
    }
    buf
}

/// Decodes a label set written by [`encode_labels`].
pub fn decode_labels(bytes: &[u8]) -> Result<Labels, CorruptValue> {
    let mut r = Reader(bytes);
    let n = r.uvarint()? as usize;
    let mut out = Vec::with_capacity(n.min(256));
    for _ in 0..n {
        let name = r.str()?.to_string();
        let value = r.str()?.to_string();
        out.push(Label { name, value });
    }
    if !out.windows(2).all(|w| w[0].name < w[1].name) {
        return Err(CorruptValue("labels not sorted"));
    }
    Ok(Labels::from_sorted_unchecked(out))
}

/// Encodes metadata (the family name is the key, not part of the value).
pub fn encode_metadata(m: &MetricMetadata) -> Vec<u8> {
    let mut buf = Vec::new();
    put_str(&mut buf, m.metric_type.as_str());
    put_str(&mut buf, &m.help);
    put_str(&mut buf, &m.unit);
    buf
}

/// Decodes metadata written by [`encode_metadata`].
pub fn decode_metadata(family: &str, bytes: &[u8]) -> Result<MetricMetadata, CorruptValue> {
    let mut r = Reader(bytes);
    let metric_type = MetricType::parse(r.str()?);
    let help = r.str()?.to_string();
    let unit = r.str()?.to_string();
    Ok(MetricMetadata {
        metric_family_name: family.to_string(),
        metric_type,
        help,
        unit,
    })
}
