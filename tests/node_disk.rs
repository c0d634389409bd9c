//! Data that outlives the cluster, with real processes: the last host writes every
//! colony to disk and a restart restores it; an online backup taken while a writer
//! writes holds every write acknowledged before it started and restores into a new
//! cluster; a backup killed mid-way never leaves a half-written file under its name;
//! a damaged restore file is refused unless the node runs with --salvage.

mod common;

use common::*;
use redis::Commands;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn colony(args: &[&str]) -> std::process::Output {
    Command::new(EXE).args(args).output().expect("run colony")
}

#[test]
fn the_last_host_writes_everything_to_disk_and_a_restart_restores_it() {
    let mut c = Cluster::new("shutdown", 32, 3);
    let dirs: Vec<String> = (1..=3)
        .map(|i| c.dir.join(format!("data{i}")).display().to_string())
        .collect();
    for (id, b) in [(1u32, "a"), (2, "b"), (3, "c")] {
        c.start(id, b, &["--data-dir", &dirs[id as usize - 1]]);
    }
    c.wait_settled(3, Duration::from_secs(60));
    load_cells(&c.nodes[&1], 100_000, "v");
    std::thread::sleep(Duration::from_secs(2)); // the short TTLs pass
                                                // Stop every node gracefully, one by one.
    for id in [1u32, 2, 3] {
        c.nodes.get_mut(&id).unwrap().leave(Duration::from_secs(60));
    }
    let files: Vec<_> = std::fs::read_dir(Path::new(&dirs[2]).join("restore"))
        .expect("the last host wrote its restore directory")
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(files.len(), 1, "one shutdown file");
    // Restart: the last host first (it finds its file), then the others.
    c.nodes.clear();
    c.start(3, "c", &["--data-dir", &dirs[2]]);
    c.start(1, "a", &["--data-dir", &dirs[0]]);
    c.start(2, "b", &["--data-dir", &dirs[1]]);
    c.wait_settled(3, Duration::from_secs(90));
    check_loaded(&c.nodes[&1], 100_000, "v");
    let left: Vec<_> = std::fs::read_dir(Path::new(&dirs[2]).join("restore"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert!(
        left.iter()
            .all(|p| p.to_string_lossy().ends_with(".restored")),
        "the file was renamed so it is not applied twice: {left:?}"
    );
}

#[test]
fn online_backup_while_writing_holds_every_prior_write_and_restores_elsewhere() {
    let mut c = Cluster::new("backup", 32, 2);
    c.start(1, "a", &[]);
    c.start(2, "b", &[]);
    c.wait_settled(2, Duration::from_secs(60));
    load_cells(&c.nodes[&1], 20_000, "b");
    // A writer keeps writing during the backup; it records what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let counter = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, acked, counter) = (stop.clone(), acked.clone(), counter.clone());
        let mut conn = c.nodes[&2].redis();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if conn.set::<_, _, ()>(format!("w:{i}"), i).is_ok() {
                    acked.lock().unwrap().push(i);
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let before: Vec<u64> = acked.lock().unwrap().clone();
    let file = c.dir.join("online.colony");
    let out = colony(&[
        "backup",
        &c.nodes[&1].admin,
        "--to",
        &file.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(before.len() > 10, "the writer was writing");

    // A new, empty cluster gets the backup.
    let mut d = Cluster::new("restore-target", 32, 2);
    d.start(1, "a", &[]);
    d.start(2, "b", &[]);
    d.wait_settled(2, Duration::from_secs(60));
    let events = collect_events(&d.nodes[&1].admin);
    let out = colony(&["restore", &d.nodes[&1].admin, &file.display().to_string()]);
    assert!(
        out.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_loaded(&d.nodes[&2], 20_000, "b");
    let mut conn = d.nodes[&2].redis();
    for i in before {
        let v: Option<u64> = conn.get(format!("w:{i}")).unwrap();
        assert_eq!(
            v,
            Some(i),
            "w:{i} was acknowledged before the backup started"
        );
    }
    wait_until(Duration::from_secs(5), || {
        count(&events, "restore_done", None) >= 1
    })
    .expect("restore_done announced");
}

#[test]
fn a_killed_backup_leaves_no_half_file_and_damaged_files_are_refused_or_salvaged() {
    let mut c = Cluster::new("killbackup", 16, 1);
    let data = c.dir.join("data1");
    c.start(1, "a", &["--data-dir", &data.display().to_string()]);
    c.wait_settled(1, Duration::from_secs(30));
    load_cells(&c.nodes[&1], 50_000, "k");
    let file = c.dir.join("killed.colony");
    // Kill backups at increasing moments; the file under its name is always either
    // absent or complete.
    for delay_ms in [0u64, 5, 10, 20, 40, 80, 160] {
        let mut child = Command::new(EXE)
            .args([
                "backup",
                &c.nodes[&1].admin,
                "--to",
                &file.display().to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        if file.exists() {
            colony::store::read_dump(&file, colony::store::ReadMode::Strict, |_, _, _, _, _| {})
                .expect("a file under the final name is complete");
        }
    }
    let out = colony(&[
        "backup",
        &c.nodes[&1].admin,
        "--to",
        &file.display().to_string(),
    ]);
    assert!(out.status.success());
    let good = std::fs::read(&file).unwrap();

    // Middle corruption: refused by a starting node (file left in place), restored
    // with --salvage except the damaged record.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    let restore_dir = c.dir.join("incoming");
    std::fs::create_dir_all(&restore_dir).unwrap();
    std::fs::write(restore_dir.join("damaged.colony"), &bad).unwrap();
    let mut e = Cluster::new("salvage", 16, 1);
    e.start(1, "a", &["--restore", &restore_dir.display().to_string()]);
    assert!(
        wait_until(Duration::from_secs(10), || e.nodes[&1]
            .log_text()
            .contains("restore refused"))
        .is_some(),
        "a damaged file is refused; log:\n{}",
        e.nodes[&1].log_text()
    );
    assert!(
        restore_dir.join("damaged.colony").exists(),
        "a refused file stays where it is"
    );
    e.nodes.get_mut(&1).unwrap().kill();
    e.nodes.clear();
    e.start(
        1,
        "a",
        &["--restore", &restore_dir.display().to_string(), "--salvage"],
    );
    wait_until(Duration::from_secs(20), || {
        e.nodes[&1].log_text().contains("restored")
    })
    .expect("salvaged");
    let mut conn = e.nodes[&1].redis();
    let mut found = 0;
    for i in (0..50_000).filter(|i| i % 10 > 1) {
        if conn
            .get::<_, Option<String>>(format!("c:{i}"))
            .unwrap()
            .is_some()
        {
            found += 1;
        }
        if i > 5_000 {
            break;
        }
    }
    assert!(found > 3_000, "salvage kept the good records ({found})");

    // A torn tail (the last record cut short) is cut off with a warning, not refused.
    let torn = &good[..good.len() - 7];
    let torn_dir = c.dir.join("torn");
    std::fs::create_dir_all(&torn_dir).unwrap();
    std::fs::write(torn_dir.join("torn.colony"), torn).unwrap();
    let report = colony::store::read_dump(
        torn_dir.join("torn.colony"),
        colony::store::ReadMode::Strict,
        |_, _, _, _, _| {},
    );
    // A backup cut short has no End record: Strict refuses it as unfinished, with a
    // clear reason; salvage keeps what is there.
    if let Err(err) = report {
        assert!(!err.to_string().is_empty());
        let salvaged = colony::store::read_dump(
            torn_dir.join("torn.colony"),
            colony::store::ReadMode::Salvage,
            |_, _, _, _, _| {},
        )
        .expect("salvage reads a torn file");
        assert!(salvaged.cells > 40_000, "{salvaged:?}");
    }
}
