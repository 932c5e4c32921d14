//! Reports and their compact binary encoding.
//!
//! A report is what leaves the client: the short id of the protocol descriptor it was made
//! under, and the oracle's randomized output. Nothing in it depends on the true value except
//! through the randomizer.
//!
//! # Binary encoding (version 1)
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version, `1` |
//! | 8 | protocol short id, little-endian |
//! | 1 | payload kind: 1 GRR, 2 OUE, 3 OLH, 4 Hadamard, 5 HCMS, 6 Duchi, 7 piecewise |
//! | … | payload: unsigned LEB128 integers; OLH's seed as 8 little-endian bytes; OUE as a sparse list of gaps (mode 0) or a bitmap (mode 1), whichever is shorter |
//!
//! A GRR report at `d = 1024` is 12 bytes, an OLH report 19 or 20.

use alloc::string::String;
use alloc::vec::Vec;

use crate::LdpError;

/// The version byte of the binary encoding.
pub const FORMAT_VERSION: u8 = 1;

/// One client's report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Report {
    /// The short id of the descriptor the report was made under
    /// ([`ProtocolId::short`](crate::ProtocolId::short)).
    pub protocol: u64,
    /// The randomized output.
    pub payload: Payload,
}

/// The randomized output of one oracle.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Payload {
    /// GRR: a value index.
    Grr {
        /// The reported index.
        value: u32,
    },
    /// OUE: the sorted positions of the 1 bits.
    Oue {
        /// Positions, strictly increasing.
        ones: Vec<u32>,
    },
    /// OLH: the hash seed and the reported bucket.
    Olh {
        /// The seed that picks the hash function.
        seed: u64,
        /// The reported bucket.
        value: u32,
    },
    /// Hadamard response: a column.
    Hadamard {
        /// The reported column.
        column: u32,
    },
    /// Hadamard count-mean sketch: hash index, column and bit.
    Hcms {
        /// Which hash function.
        hash: u32,
        /// Which column.
        column: u32,
        /// The bit, `true` for `+1`.
        positive: bool,
    },
    /// Duchi et al.: a sign.
    Duchi {
        /// `true` for `+B`.
        positive: bool,
    },
    /// Piecewise mechanism: a cell.
    Piecewise {
        /// The reported cell.
        cell: u32,
    },
}

impl Payload {
    /// A short name of the payload kind, for messages.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Grr { .. } => "grr",
            Self::Oue { .. } => "oue",
            Self::Olh { .. } => "olh",
            Self::Hadamard { .. } => "hadamard",
            Self::Hcms { .. } => "hcms",
            Self::Duchi { .. } => "duchi",
            Self::Piecewise { .. } => "piecewise",
        }
    }
}

impl Report {
    /// The compact binary encoding.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        self.encode_into(&mut out);
        out
    }

    /// Appends the compact binary encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.protocol.to_le_bytes());
        match &self.payload {
            Payload::Grr { value } => {
                out.push(1);
                put_varint(out, u64::from(*value));
            }
            Payload::Oue { ones } => {
                out.push(2);
                encode_positions(out, ones);
            }
            Payload::Olh { seed, value } => {
                out.push(3);
                out.extend_from_slice(&seed.to_le_bytes());
                put_varint(out, u64::from(*value));
            }
            Payload::Hadamard { column } => {
                out.push(4);
                put_varint(out, u64::from(*column));
            }
            Payload::Hcms {
                hash,
                column,
                positive,
            } => {
                out.push(5);
                put_varint(out, u64::from(*hash));
                put_varint(out, u64::from(*column));
                out.push(u8::from(*positive));
            }
            Payload::Duchi { positive } => {
                out.push(6);
                out.push(u8::from(*positive));
            }
            Payload::Piecewise { cell } => {
                out.push(7);
                put_varint(out, u64::from(*cell));
            }
        }
    }

    /// Reads one report from its binary encoding. The result is not yet checked against a
    /// protocol: see [`Protocol::check`](crate::Protocol::check).
    ///
    /// # Errors
    /// [`LdpError::Truncated`] if the bytes end early; [`LdpError::Corrupt`] for an
    /// unknown version or kind, an overlong integer or trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, LdpError> {
        let mut reader = Reader { bytes, at: 0 };
        let version = reader.byte("format version")?;
        if version != FORMAT_VERSION {
            return Err(corrupt(alloc::format!(
                "format version {version} is not {FORMAT_VERSION}"
            )));
        }
        let protocol = u64::from_le_bytes(reader.array("protocol id")?);
        let kind = reader.byte("payload kind")?;
        let payload = match kind {
            1 => Payload::Grr {
                value: reader.varint32("value")?,
            },
            2 => Payload::Oue {
                ones: decode_positions(&mut reader)?,
            },
            3 => Payload::Olh {
                seed: u64::from_le_bytes(reader.array("seed")?),
                value: reader.varint32("bucket")?,
            },
            4 => Payload::Hadamard {
                column: reader.varint32("column")?,
            },
            5 => Payload::Hcms {
                hash: reader.varint32("hash index")?,
                column: reader.varint32("column")?,
                positive: reader.flag("bit")?,
            },
            6 => Payload::Duchi {
                positive: reader.flag("sign")?,
            },
            7 => Payload::Piecewise {
                cell: reader.varint32("cell")?,
            },
            other => return Err(corrupt(alloc::format!("unknown payload kind {other}"))),
        };
        if reader.at != bytes.len() {
            return Err(corrupt(alloc::format!(
                "{} bytes after the end of the report",
                bytes.len() - reader.at
            )));
        }
        Ok(Self { protocol, payload })
    }
}

fn corrupt(reason: String) -> LdpError {
    LdpError::Corrupt { reason }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        #[allow(clippy::cast_possible_truncation)]
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.push(value as u8);
}

fn varint_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros().min(63);
    bits.div_ceil(7) as usize
}

fn encode_positions(out: &mut Vec<u8>, ones: &[u32]) {
    let bitmap_len = ones.last().map_or(0, |&last| (last as usize) / 8 + 1);
    let mut previous = 0_u32;
    let mut sparse_len = varint_len(ones.len() as u64);
    for (i, &position) in ones.iter().enumerate() {
        let gap = if i == 0 {
            position
        } else {
            position - previous - 1
        };
        sparse_len += varint_len(u64::from(gap));
        previous = position;
    }
    let dense_len = varint_len(bitmap_len as u64) + bitmap_len;
    if sparse_len <= dense_len {
        out.push(0);
        put_varint(out, ones.len() as u64);
        let mut previous = 0_u32;
        for (i, &position) in ones.iter().enumerate() {
            let gap = if i == 0 {
                position
            } else {
                position - previous - 1
            };
            put_varint(out, u64::from(gap));
            previous = position;
        }
    } else {
        out.push(1);
        put_varint(out, bitmap_len as u64);
        let start = out.len();
        out.resize(start + bitmap_len, 0);
        for &position in ones {
            out[start + (position as usize) / 8] |= 1 << (position % 8);
        }
    }
}

fn decode_positions(reader: &mut Reader<'_>) -> Result<Vec<u32>, LdpError> {
    match reader.byte("position mode")? {
        0 => {
            let count = reader.varint("position count")?;
            let remaining = reader.bytes.len() - reader.at;
            if count > remaining as u64 {
                return Err(LdpError::Truncated { what: "positions" });
            }
            #[allow(clippy::cast_possible_truncation)]
            let mut ones = Vec::with_capacity(count as usize);
            let mut next = 0_u64;
            for _ in 0..count {
                let position = next
                    .checked_add(reader.varint("position")?)
                    .and_then(|position| u32::try_from(position).ok())
                    .ok_or_else(|| corrupt(String::from("a position does not fit in 32 bits")))?;
                ones.push(position);
                next = u64::from(position) + 1;
            }
            Ok(ones)
        }
        1 => {
            let length = reader.varint("bitmap length")?;
            let length = usize::try_from(length)
                .ok()
                .filter(|&length| length <= reader.bytes.len() - reader.at)
                .ok_or(LdpError::Truncated { what: "bitmap" })?;
            let bitmap = &reader.bytes[reader.at..reader.at + length];
            reader.at += length;
            let mut ones = Vec::new();
            for (byte_index, &byte) in bitmap.iter().enumerate() {
                let mut bits = byte;
                while bits != 0 {
                    let position = byte_index * 8 + bits.trailing_zeros() as usize;
                    ones.push(u32::try_from(position).map_err(|_| {
                        corrupt(String::from("a position does not fit in 32 bits"))
                    })?);
                    bits &= bits - 1;
                }
            }
            Ok(ones)
        }
        other => Err(corrupt(alloc::format!("unknown position mode {other}"))),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self, what: &'static str) -> Result<u8, LdpError> {
        let byte = *self
            .bytes
            .get(self.at)
            .ok_or(LdpError::Truncated { what })?;
        self.at += 1;
        Ok(byte)
    }

    fn flag(&mut self, what: &'static str) -> Result<bool, LdpError> {
        match self.byte(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(corrupt(alloc::format!("{what} is {other}, not 0 or 1"))),
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], LdpError> {
        let slice = self
            .bytes
            .get(self.at..self.at + N)
            .ok_or(LdpError::Truncated { what })?;
        self.at += N;
        let mut array = [0_u8; N];
        array.copy_from_slice(slice);
        Ok(array)
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, LdpError> {
        let mut value = 0_u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte(what)?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                break;
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(corrupt(alloc::format!("{what} is not a valid integer")))
    }

    fn varint32(&mut self, what: &'static str) -> Result<u32, LdpError> {
        u32::try_from(self.varint(what)?)
            .map_err(|_| corrupt(alloc::format!("{what} does not fit in 32 bits")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn round_trip(payload: Payload) {
        let report = Report {
            protocol: 0x0123_4567_89ab_cdef,
            payload,
        };
        let bytes = report.encode();
        assert_eq!(Report::decode(&bytes), Ok(report.clone()));
        // Every strict prefix is refused as truncated, never misread.
        for end in 0..bytes.len() {
            let error = Report::decode(&bytes[..end]).unwrap_err();
            assert!(
                matches!(error, LdpError::Truncated { .. } | LdpError::Corrupt { .. }),
                "{error:?}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Report::decode(&longer),
            Err(LdpError::Corrupt { .. })
        ));
    }

    #[test]
    fn every_payload_round_trips() {
        round_trip(Payload::Grr { value: 1023 });
        round_trip(Payload::Oue { ones: vec![] });
        round_trip(Payload::Oue {
            ones: vec![0, 5, 900],
        });
        round_trip(Payload::Oue {
            ones: (0..1000).step_by(2).collect(),
        });
        round_trip(Payload::Olh {
            seed: u64::MAX,
            value: 3,
        });
        round_trip(Payload::Hadamard { column: 2047 });
        round_trip(Payload::Hcms {
            hash: 5,
            column: 17,
            positive: true,
        });
        round_trip(Payload::Duchi { positive: false });
        round_trip(Payload::Piecewise {
            cell: (1 << 20) - 1,
        });
    }

    #[test]
    fn reports_are_compact() {
        let grr = Report {
            protocol: 1,
            payload: Payload::Grr { value: 1000 },
        };
        assert_eq!(grr.encode().len(), 12);
        let dense = Report {
            protocol: 1,
            payload: Payload::Oue {
                ones: (0..1024).step_by(3).collect(),
            },
        };
        assert!(dense.encode().len() <= 10 + 1 + 2 + 128);
    }

    #[test]
    fn corrupt_bytes_are_refused() {
        assert!(matches!(
            Report::decode(&[2]),
            Err(LdpError::Corrupt { .. })
        ));
        let mut bytes = Report {
            protocol: 1,
            payload: Payload::Duchi { positive: true },
        }
        .encode();
        bytes[9] = 99;
        assert!(matches!(
            Report::decode(&bytes),
            Err(LdpError::Corrupt { .. })
        ));
        let mut flag = Report {
            protocol: 1,
            payload: Payload::Duchi { positive: true },
        }
        .encode();
        flag[10] = 7;
        assert!(matches!(
            Report::decode(&flag),
            Err(LdpError::Corrupt { .. })
        ));
    }
}
