use std::collections::BTreeMap;

use veil_core::Epsilon;
use veil_ldp::{Domain, Longitudinal, OracleName, ProtocolConfig};

use super::*;

/// Segments as length-prefixed reports, written like the real sink: temporary, synced,
/// renamed.
struct TestSink;

impl SegmentSink for TestSink {
    fn extension(&self) -> &'static str {
        "bin"
    }

    fn write_segment(&self, path: &Path, reports: &[Vec<u8>]) -> Result<(), String> {
        let temporary = path.with_extension("tmp");
        let mut bytes = Vec::new();
        for report in reports {
            bytes.extend_from_slice(&u32::try_from(report.len()).unwrap().to_le_bytes());
            bytes.extend_from_slice(report);
        }
        fs::write(&temporary, bytes).map_err(|e| e.to_string())?;
        fs::rename(&temporary, path).map_err(|e| e.to_string())
    }
}

fn read_segment(path: &Path) -> Vec<Vec<u8>> {
    let bytes = fs::read(path).unwrap();
    let mut reports = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let length = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        reports.push(bytes[at + 4..at + 4 + length].to_vec());
        at += 4 + length;
    }
    reports
}

fn protocol(epsilon: f64) -> Protocol {
    Protocol::new(ProtocolConfig {
        oracle: OracleName::Grr,
        epsilon: Epsilon::new(epsilon).unwrap(),
        domain: Domain::Size(4),
        longitudinal: Longitudinal::Independent,
    })
    .unwrap()
}

fn policy(segment_reports: usize) -> StorePolicy {
    StorePolicy {
        segment_reports,
        segment_age: Duration::from_secs(3600),
        queue: 64,
    }
}

type Seen = Arc<Mutex<Vec<StoreEvent>>>;

fn open(dir: &Path, protocol: &Protocol, policy: StorePolicy) -> Result<(Store, Seen), StoreError> {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let store = Store::open(
        dir,
        protocol,
        Arc::new(TestSink),
        policy,
        Box::new(veil_testkit::seeded_rng(1)),
        Arc::new(move |event| log.lock().unwrap().push(event)),
    )?;
    Ok((store, seen))
}

/// Every report stored in the directory's segments, as a multiset.
fn stored(dir: &Path) -> BTreeMap<Vec<u8>, usize> {
    let mut all = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "bin") {
            for report in read_segment(&path) {
                *all.entry(report).or_default() += 1;
            }
        }
    }
    all
}

fn reports(from: u32, count: u32) -> Vec<Vec<u8>> {
    (from..from + count)
        .map(|i| i.to_le_bytes().to_vec())
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn acknowledged_batches_end_in_segments_in_shuffled_order() {
    let dir = tempfile::tempdir().unwrap();
    let (store, seen) = open(dir.path(), &protocol(1.0), policy(250)).unwrap();
    let appender = store.appender();
    runtime().block_on(async {
        for batch in 0..10 {
            appender.append(reports(batch * 100, 100)).await.unwrap();
        }
    });
    drop(appender);
    store.close().unwrap();
    let all = stored(dir.path());
    assert_eq!(all.len(), 1000);
    assert!(all.values().all(|count| *count == 1));
    // Rotated on count: several segments, no log left.
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        names
            .iter()
            .filter(|name| name.starts_with("reports-"))
            .count()
            >= 3,
        "{names:?}"
    );
    assert!(
        !names.iter().any(|name| name.ends_with(".log")),
        "{names:?}"
    );
    assert!(names.contains(&MARKER.to_string()));
    // Within a segment, rows are not in arrival order.
    let first = read_segment(&dir.path().join("reports-000001.bin"));
    let arrival: Vec<Vec<u8>> = reports(0, u32::try_from(first.len()).unwrap());
    assert_ne!(first, arrival);
    let events = seen.lock().unwrap();
    let sealed: usize = events
        .iter()
        .map(|event| match event {
            StoreEvent::Sealed { reports, .. } => *reports,
            _ => 0,
        })
        .sum();
    assert_eq!(sealed, 1000);
}

#[test]
fn a_log_left_by_a_crash_is_sealed_up_to_its_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    let built = protocol(1.0);
    // The first run marks the directory; then a log as a killed run leaves it: three
    // whole records and a torn fourth.
    let (store, _) = open(dir.path(), &built, policy(1000)).unwrap();
    store.close().unwrap();
    let mut bytes = WAL_MAGIC.to_vec();
    bytes.extend_from_slice(&built.id().short().to_le_bytes());
    for report in reports(7, 3) {
        append_record(&mut bytes, &report);
    }
    let mut torn = Vec::new();
    append_record(&mut torn, &[1, 2, 3, 4, 5]);
    bytes.extend_from_slice(&torn[..7]);
    fs::write(dir.path().join("wal-000005.log"), &bytes).unwrap();
    let (store, seen) = open(dir.path(), &built, policy(1000)).unwrap();
    assert_eq!(
        seen.lock().unwrap()[0],
        StoreEvent::Recovered {
            wal: dir.path().join("wal-000005.log"),
            reports: 3,
            discarded_bytes: 7,
        }
    );
    // The next log takes the next number: nothing is written over.
    assert!(dir.path().join("wal-000006.log").exists());
    store.close().unwrap();
    let all = stored(dir.path());
    assert_eq!(all.len(), 3);
    assert_eq!(
        read_segment(&dir.path().join("reports-000005.bin")).len(),
        3
    );

    // A log whose segment was written before the crash is only deleted: no duplicates.
    let mut bytes = WAL_MAGIC.to_vec();
    bytes.extend_from_slice(&built.id().short().to_le_bytes());
    append_record(&mut bytes, &reports(7, 1)[0]);
    fs::write(dir.path().join("wal-000005.log"), &bytes).unwrap();
    let (store, _) = open(dir.path(), &built, policy(1000)).unwrap();
    store.close().unwrap();
    assert_eq!(stored(dir.path()).len(), 3);
    assert!(!dir.path().join("wal-000005.log").exists());
}

#[test]
fn one_collector_per_directory_and_one_protocol_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), &protocol(1.0), policy(10)).unwrap();
    let error = open(dir.path(), &protocol(1.0), policy(10)).unwrap_err();
    assert!(matches!(error, StoreError::Locked { .. }), "{error}");
    store.close().unwrap();
    let error = open(dir.path(), &protocol(2.0), policy(10)).unwrap_err();
    assert!(matches!(error, StoreError::OtherProtocol { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("give each protocol its own --out"),
        "{error}"
    );
}

#[test]
fn an_idle_log_is_sealed_when_it_is_old_enough() {
    let dir = tempfile::tempdir().unwrap();
    let mut policy = policy(1_000_000);
    policy.segment_age = Duration::from_millis(50);
    let (store, seen) = open(dir.path(), &protocol(1.0), policy).unwrap();
    let appender = store.appender();
    runtime().block_on(appender.append(reports(0, 4))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen
        .lock()
        .unwrap()
        .iter()
        .any(|event| matches!(event, StoreEvent::Sealed { reports: 4, .. }))
    {
        assert!(
            Instant::now() < deadline,
            "not sealed: {:?}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(stored(dir.path()).len(), 4);
    drop(appender);
    store.close().unwrap();
}

#[test]
fn shuffling_is_a_permutation_and_moves_every_position() {
    let mut rng = veil_testkit::seeded_rng(3);
    let mut first_positions = vec![0_usize; 8];
    for _ in 0..8000 {
        let mut rows: Vec<Vec<u8>> = (0..8_u8).map(|i| vec![i]).collect();
        shuffle(&mut rows, &mut rng);
        let mut sorted = rows.clone();
        sorted.sort();
        assert_eq!(sorted, (0..8_u8).map(|i| vec![i]).collect::<Vec<_>>());
        first_positions[usize::from(rows[0][0])] += 1;
    }
    // Each value comes first about 1000 times in 8000 (binomial sd ≈ 30).
    for count in first_positions {
        assert!((850..1150).contains(&count), "{count}");
    }
}
