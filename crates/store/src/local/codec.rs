//! On-disk encodings of the local backends: key records and history entries.

use crate::{Event, Revision, StoreError, Versioned};

/// Splits a stored key record (8-byte big-endian version, then the value).
pub(super) fn unpack(key: &str, record: &[u8]) -> Result<Versioned, StoreError> {
    match record.split_first_chunk::<8>() {
        Some((version, value)) => Ok(Versioned {
            value: value.to_vec(),
            version: u64::from_be_bytes(*version),
        }),
        None => Err(StoreError::CorruptValue {
            key: key.to_string(),
        }),
    }
}

/// The version of a stored key record.
pub(super) fn version_of(key: &str, record: &[u8]) -> Result<Revision, StoreError> {
    match record.first_chunk::<8>() {
        Some(version) => Ok(u64::from_be_bytes(*version)),
        None => Err(StoreError::CorruptValue {
            key: key.to_string(),
        }),
    }
}

/// A key record: version, then value.
pub(super) fn pack(version: Revision, value: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(8 + value.len());
    record.extend_from_slice(&version.to_be_bytes());
    record.extend_from_slice(value);
    record
}

const PUT: u8 = 0;
const DELETE: u8 = 1;

/// One revision's events: per event a tag (0 put, 1 delete), the key (u32 length,
/// bytes) and for puts the value (u32 length, bytes). The revision is the table key.
pub(super) fn encode_events(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        match event {
            Event::Put { key, value, .. } => {
                out.push(PUT);
                push_bytes(&mut out, key.as_bytes());
                push_bytes(&mut out, value);
            }
            Event::Delete { key, .. } => {
                out.push(DELETE);
                push_bytes(&mut out, key.as_bytes());
            }
        }
    }
    out
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Keys and values are far below 4 GiB (a batch is one in-memory Vec).
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Decodes one revision's events, keeping those whose key starts with `prefix`.
pub(super) fn decode_events(
    revision: Revision,
    mut data: &[u8],
    prefix: &str,
    out: &mut impl Extend<Event>,
) -> Result<(), StoreError> {
    let corrupt = || StoreError::CorruptValue {
        key: format!("history/{revision}"),
    };
    while let Some((&tag, rest)) = data.split_first() {
        let (key, rest) = take_bytes(rest).ok_or_else(corrupt)?;
        let key = std::str::from_utf8(key).map_err(|_| corrupt())?;
        let event = match tag {
            PUT => {
                let (value, rest) = take_bytes(rest).ok_or_else(corrupt)?;
                data = rest;
                Event::Put {
                    key: key.to_string(),
                    value: value.to_vec(),
                    revision,
                }
            }
            DELETE => {
                data = rest;
                Event::Delete {
                    key: key.to_string(),
                    revision,
                }
            }
            _ => return Err(corrupt()),
        };
        if event.key().starts_with(prefix) {
            out.extend(std::iter::once(event));
        }
    }
    Ok(())
}

fn take_bytes(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = data.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_filter() {
        let events = vec![
            Event::Put {
                key: "network/a".into(),
                value: b"A".to_vec(),
                revision: 7,
            },
            Event::Delete {
                key: "endpoint/x".into(),
                revision: 7,
            },
            Event::Put {
                key: "network/e".into(),
                value: Vec::new(),
                revision: 7,
            },
        ];
        let data = encode_events(&events);
        let mut all = Vec::new();
        decode_events(7, &data, "", &mut all).unwrap();
        assert_eq!(all, events);
        let mut nets = Vec::new();
        decode_events(7, &data, "network/", &mut nets).unwrap();
        assert_eq!(nets, vec![events[0].clone(), events[2].clone()]);
        // a truncated entry is an error unless it ends exactly between events
        for cut in 1..data.len() {
            let mut v = Vec::new();
            if decode_events(7, &data[..cut], "", &mut v).is_ok() {
                assert!(v.len() < events.len() && events.starts_with(&v), "{cut}");
                assert_eq!(encode_events(&v).len(), cut);
            }
        }
        let mut bad = data.clone();
        bad[0] = 9;
        assert!(decode_events(7, &bad, "", &mut Vec::new()).is_err());
    }

    #[test]
    fn records() {
        let r = pack(42, b"xyz");
        assert_eq!(
            unpack("k", &r).unwrap(),
            Versioned {
                value: b"xyz".to_vec(),
                version: 42
            }
        );
        assert_eq!(version_of("k", &r).unwrap(), 42);
        assert!(unpack("k", b"short").is_err());
        assert!(version_of("k", b"").is_err());
    }
}
