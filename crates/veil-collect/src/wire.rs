//! The upload format: a batch of encoded reports in one request body.
//!
//! Each report is its length (2 bytes, little-endian) followed by its bytes in Veil's compact
//! encoding ([`veil_ldp::Report::encode`]). The media type is [`CONTENT_TYPE`]; the browser
//! client's `encodeBatch` writes the same bytes.

/// The media type of a batch.
pub const CONTENT_TYPE: &str = "application/vnd.veil.ldp-reports";

/// Why a body is not a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The body holds no report.
    #[error("the batch is empty")]
    Empty,
    /// More reports than the collector takes in one request.
    #[error("the batch holds more than {max} reports")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// A length prefix runs past the end of the body, or a report is empty.
    #[error("report {index} of the batch is cut off or empty (byte {offset} of the body)")]
    Framing {
        /// The report's position, from 1.
        index: usize,
        /// Where its length prefix starts.
        offset: usize,
    },
}

/// The reports of a batch, as slices of `body`.
///
/// # Errors
/// [`WireError`] for an empty batch, more than `max_reports`, or broken framing.
pub fn decode_batch(body: &[u8], max_reports: usize) -> Result<Vec<&[u8]>, WireError> {
    let mut reports = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let index = reports.len() + 1;
        if index > max_reports {
            return Err(WireError::TooMany { max: max_reports });
        }
        let framing = WireError::Framing { index, offset: at };
        let Some(prefix) = body.get(at..at + 2) else {
            return Err(framing);
        };
        let length = usize::from(u16::from_le_bytes([prefix[0], prefix[1]]));
        let start = at + 2;
        match body.get(start..start + length) {
            Some(report) if length > 0 => reports.push(report),
            _ => return Err(framing),
        }
        at = start + length;
    }
    if reports.is_empty() {
        return Err(WireError::Empty);
    }
    Ok(reports)
}

/// A batch's body.
///
/// # Errors
/// [`WireError::Framing`] if a report is empty or longer than 65,535 bytes.
pub fn encode_batch<R: AsRef<[u8]>>(reports: &[R]) -> Result<Vec<u8>, WireError> {
    let mut body = Vec::with_capacity(reports.iter().map(|r| r.as_ref().len() + 2).sum());
    for (position, report) in reports.iter().enumerate() {
        let report = report.as_ref();
        let length = u16::try_from(report.len())
            .ok()
            .filter(|length| *length > 0)
            .ok_or(WireError::Framing {
                index: position + 1,
                offset: body.len(),
            })?;
        body.extend_from_slice(&length.to_le_bytes());
        body.extend_from_slice(report);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_broken_framing_is_located() {
        let reports: Vec<Vec<u8>> = vec![vec![1, 2, 3], vec![9; 300], vec![7]];
        let body = encode_batch(&reports).unwrap();
        assert_eq!(body[..2], [3, 0]);
        let decoded = decode_batch(&body, 10).unwrap();
        assert_eq!(decoded, [&reports[0][..], &reports[1][..], &reports[2][..]]);
        assert_eq!(decode_batch(&body, 2), Err(WireError::TooMany { max: 2 }));
        assert_eq!(decode_batch(&[], 10), Err(WireError::Empty));
        // Cut inside the second report: it is named, with where it starts.
        assert_eq!(
            decode_batch(&body[..10], 10),
            Err(WireError::Framing {
                index: 2,
                offset: 5
            })
        );
        // A dangling half prefix, and an empty report.
        assert!(decode_batch(&[3, 0, 1, 2, 3, 4], 10).is_err());
        assert!(decode_batch(&[0, 0], 10).is_err());
        assert!(encode_batch(&[Vec::<u8>::new()]).is_err());
        assert!(encode_batch(&[vec![0_u8; 70_000]]).is_err());
    }
}
