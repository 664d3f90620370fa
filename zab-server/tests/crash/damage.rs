//! Damage inside what was reported durable (B2, B3) and damaged epoch files (B7): restored as recovering.

use super::*;

/// B2: a damaged record inside what was reported durable is not a torn tail,
/// in a sealed segment or in the newest: recovery keeps the intact prefix,
/// says which file and offset, keeps the damaged file aside, and restores
/// the server as recovering (it never votes from the shortened history),
/// across restarts, until `Intact` clears it. With the test-only switch that
/// ignores the durable mark, the damage would pass as a torn tail.
#[test]
fn mid_log_damage_restores_as_recovering_with_file_and_offset() {
    for newest in [false, true] {
        let (fs, mut store) = fresh();
        epochs_and_synced_appends(&mut store, 1, 1, 40);
        drop(store);
        let segments = segment_files(&fs);
        assert!(
            segments.len() >= 3,
            "40 records span segments: {segments:?}"
        );
        let victim_file = if newest {
            segments.last()
        } else {
            segments.get(1)
        };
        let victim_file = victim_file.expect("listed").clone();
        let offsets = record_offsets(&fs.read(&victim_file).expect("reading the segment"));
        let (victim, start) = *offsets.last().expect("records");
        flip_byte(&fs, &victim_file, start + record::HEADER_BYTES as u64 + 3);
        let mut defective = cfg();
        defective.cut_corruption_as_torn_tail = true;
        if newest {
            let copy = fs.power_loss(CrashMode::DropUnsynced, 0);
            let (_, r) = Store::open(copy.shared(), dir(), defective).expect("defective open");
            assert!(
                r.damage.is_none(),
                "the defect takes damage for a torn tail"
            );
        }
        let (mut store, r) = open(&fs).expect("a damaged log restores as recovering");
        let damage = r.damage.clone().expect("damage is reported");
        assert!(r.restored.recovering, "{damage}");
        assert!(
            damage.contains(&victim_file.display().to_string())
                && damage.contains(&start.to_string()),
            "names file and offset of {}: {damage}",
            zs(victim)
        );
        assert_eq!(
            r.restored.history.last().0,
            victim.0 - 1,
            "the intact prefix stays"
        );
        let aside = format!("{}.damaged", victim_file.display());
        assert!(fs.read(Path::new(&aside)).is_ok(), "kept aside: {aside}");
        drop(store);
        let (_, again) = open(&fs).expect("reopen");
        assert!(again.restored.recovering, "recovering survives a restart");
        (store, _) = open(&fs).expect("reopen");
        let ensemble = zab_core::EnsembleId(7);
        store
            .apply(&PersistOp::Intact { ensemble })
            .expect("intact");
        drop(store);
        let (_, healed) = open(&fs).expect("reopen");
        assert!(!healed.restored.recovering && healed.damage.is_none());
        assert_eq!(healed.restored.ensemble, ensemble);
    }
}

/// B3: a missing middle segment leaves a gap below the durable mark: the
/// server restores as recovering from the segments before the hole.
#[test]
fn missing_middle_segment_restores_as_recovering() {
    let (fs, mut store) = fresh();
    epochs_and_synced_appends(&mut store, 1, 1, 40);
    drop(store);
    let segments = segment_files(&fs);
    assert!(segments.len() >= 3, "{segments:?}");
    fs.remove(&segments[1]).expect("removing a segment");
    let (_, r) = open(&fs).expect("restores");
    assert!(r.restored.recovering);
    assert_eq!(r.restored.history.last(), z(1, RECORDS_PER_SEGMENT));
    let damage = r.damage.expect("reported");
    assert!(damage.contains("a segment is missing"), "{damage}");
    // Losing the newest segments is caught by the mark alone.
    let (fs, mut store) = fresh();
    epochs_and_synced_appends(&mut store, 1, 1, 40);
    drop(store);
    let segments = segment_files(&fs);
    fs.remove(segments.last().expect("listed"))
        .expect("removing");
    let (_, r) = open(&fs).expect("restores");
    assert!(r.restored.recovering, "{:?}", r.damage);
}

/// B3: a log that does not continue the snapshot recovery starts from (its
/// first segment lost, or the newest snapshot damaged and the older one's
/// log purged) is damage, not a fatal error: the server restores the
/// snapshot alone, as recovering, and the unusable segments are kept aside.
/// (Found by the whole-server simulator's disk faults.)
#[test]
fn a_log_that_skips_past_the_snapshot_restores_as_recovering() {
    let (fs, mut store) = fresh();
    epochs_and_synced_appends(&mut store, 1, 1, 40);
    store
        .write_snapshot(z(1, 5), b"state at 5")
        .expect("snapshot");
    drop(store);
    let segments = segment_files(&fs);
    assert!(segments.len() >= 3, "{segments:?}");
    fs.remove(&segments[0]).expect("removing the first segment");
    let (mut store, r) = open(&fs).expect("restores instead of failing");
    assert!(r.restored.recovering, "{:?}", r.damage);
    assert!(r.replay.is_empty(), "nothing after the hole is replayed");
    assert_eq!(r.restored.history.last(), z(1, 5), "the snapshot stays");
    let damage = r.damage.expect("reported");
    assert!(damage.contains("lost"), "{damage}");
    let aside = format!("{}.damaged", segments[1].display());
    assert!(fs.read(Path::new(&aside)).is_ok(), "kept aside: {aside}");
    // Appends continue after the snapshot.
    store
        .apply(&PersistOp::Append(txn(1, 6)))
        .and_then(|()| store.sync())
        .expect("appends after the snapshot");
    drop(store);
    let (_, again) = open(&fs).expect("reopen");
    assert!(again.restored.recovering);
    assert_eq!(again.restored.history.last(), z(1, 6));
}

/// B3: a lost segment that held the tail of an epoch leaves zxids that look
/// contiguous (the next epoch's first counter follows any counter of the
/// one before), and the mark is still met; the segments' chain links (each
/// names the zxid it follows) show the hole. Found by the whole-server
/// simulator (seed 104128), where such a server rejoined as a member and
/// an acknowledged write was lost.
#[test]
fn a_lost_segment_that_ended_an_epoch_restores_as_recovering() {
    let (fs, mut store) = fresh();
    epochs_and_synced_appends(&mut store, 1, 1, 3 * RECORDS_PER_SEGMENT);
    epochs_and_synced_appends(&mut store, 2, 1, 4);
    drop(store);
    let segments = segment_files(&fs);
    assert!(segments.len() >= 4, "{segments:?}");
    // The third segment holds (1, 25..=36), the last of epoch 1.
    let third = &segments[2];
    assert!(
        third
            .display()
            .to_string()
            .contains(&format!("{:016x}.", z(1, 2 * RECORDS_PER_SEGMENT + 1).0)),
        "{third:?}"
    );
    fs.remove(third).expect("removing a segment");
    let (_, r) = open(&fs).expect("restores");
    let damage = r.damage.clone().expect("the hole is found");
    assert!(r.restored.recovering, "{damage}");
    assert!(damage.contains("a segment is missing"), "{damage}");
    assert_eq!(r.restored.history.last(), z(1, 2 * RECORDS_PER_SEGMENT));
    // The first segment lost instead, with a snapshot before the hole: the
    // chain link of the first segment left shows it.
    let (fs, mut store) = fresh();
    epochs_and_synced_appends(&mut store, 1, 1, 2 * RECORDS_PER_SEGMENT);
    store
        .write_snapshot(z(1, 5), b"state at 5")
        .expect("snapshot");
    epochs_and_synced_appends(&mut store, 2, 1, 4);
    drop(store);
    let segments = segment_files(&fs);
    fs.remove(&segments[0]).expect("removing the first segment");
    fs.remove(&segments[1])
        .expect("and the second: epoch 1's tail");
    let (_, r) = open(&fs).expect("restores");
    assert!(r.restored.recovering, "{:?}", r.damage);
    assert_eq!(r.restored.history.last(), z(1, 5), "the snapshot alone");
}

/// B7: a missing epoch file next to a log is damage, not epoch 0: the
/// server restores as recovering; a torn one is damaged (REFERENCE §1.8).
#[test]
fn missing_or_torn_epoch_file_is_damage() {
    for name in [epoch_file::ACCEPTED, epoch_file::CURRENT] {
        let (fs, mut store) = fresh();
        epochs_and_synced_appends(&mut store, 1, 1, 5);
        drop(store);
        let path = dir().join(name);
        fs.remove(&path).expect("removing the epoch file");
        let (_, r) = open(&fs).expect("restores");
        assert!(r.restored.recovering, "missing {name}");
        assert!(r
            .damage
            .expect("reported")
            .contains(&path.display().to_string()));

        // Torn (the last byte missing) and damaged (the epoch's digit
        // changed, which only the checksum can tell).
        fn torn(good: &[u8]) -> Vec<u8> {
            good[..good.len() - 1].to_vec()
        }
        fn changed(good: &[u8]) -> Vec<u8> {
            let mut bad = good.to_vec();
            bad[0] = if bad[0] == b'3' { b'5' } else { b'3' };
            bad
        }
        type Damage = fn(&[u8]) -> Vec<u8>;
        for (how, damage) in [("torn", torn as Damage), ("changed", changed)] {
            let (fs, mut store) = fresh();
            epochs_and_synced_appends(&mut store, 1, 1, 5);
            drop(store);
            let good = fs.read(&path).expect("reading the epoch file");
            let mut file = fs.create(&path).expect("replacing the epoch file");
            file.write_at(0, &damage(&good))
                .expect("writing a bad epoch file");
            drop(file);
            let (_, r) = open(&fs).expect("restores");
            assert!(r.restored.recovering, "{how} {name}");
            assert!(r
                .damage
                .expect("reported")
                .contains(&path.display().to_string()));
        }
    }
}
