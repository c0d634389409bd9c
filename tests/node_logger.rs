//! The logging node with real processes: it records every acknowledged write of a
//! cluster under load; after every node has gone, `colony log compact` shrinks the log
//! to the live data and `colony restore --from-log` brings every live cell back into a
//! new cluster. A logger killed with SIGKILL and restarted on its directory recovers
//! its position and fetches what it missed, so its log is whole again.

mod common;

use colony::core::cell::{Cell, Dna};
use colony::store::log::replay;
use colony::store::ReadMode;
use common::*;
use nix::sys::signal::Signal;
use redis::Commands;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn colony(args: &[&str]) -> std::process::Output {
    Command::new(EXE).args(args).output().expect("run colony")
}

/// Writes `range` as `<tag>-<i>` (every tenth as a hash), pipelined.
fn write(node: &NodeProc, range: std::ops::Range<usize>, tag: &str) {
    let mut conn = node.redis();
    for chunk in range.collect::<Vec<_>>().chunks(1_000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            if i % 10 == 0 {
                pipe.hset(format!("c:{i}"), "dna", format!("{tag}-{i}"))
                    .ignore();
            } else {
                pipe.set(format!("c:{i}"), format!("{tag}-{i}")).ignore();
            }
        }
        let () = pipe.query(&mut conn).expect("write");
    }
}

/// What every key should hold after the load of the first test.
fn expected(i: usize) -> Option<String> {
    match i {
        _ if i % 10 == 1 => None, // expired
        20_000..30_000 => None,   // deleted
        0..20_000 => Some(format!("w-{i}")),
        _ => Some(format!("v-{i}")),
    }
}

fn check(node: &NodeProc, n: usize) {
    check_cells(node, n, expected);
}

fn logger_status(n: &NodeProc) -> Option<colony::admin::report::LoggerReport> {
    n.status().and_then(|s| s.logger)
}

/// Waits until the logger has written every entry it was sent (nothing buffered) and
/// has stayed still for a moment.
fn wait_logged(logger: &NodeProc, at_least: u64) {
    let mut last = 0;
    let done = wait_until(Duration::from_secs(60), || {
        let Some(l) = logger_status(logger) else {
            return false;
        };
        let now = l.writer.entries + l.writer.snapshots;
        let still = now == last;
        last = now;
        l.writer.entries >= at_least && l.writer.buffered_bytes == 0 && still
    });
    assert!(
        done.is_some(),
        "the logger did not catch up: {:?}",
        logger_status(logger)
    );
}

/// The live cells a log directory describes, as the test's strings.
fn replayed(dir: &Path) -> BTreeMap<String, String> {
    let mut cells = BTreeMap::new();
    replay(
        dir,
        ReadMode::Strict,
        colony::actors::host::now_ms(),
        |_, key, cell: Cell| {
            let v = match cell.dna {
                Dna::Value(v) => v,
                Dna::Map(m) => m.get(&b"dna"[..]).cloned().unwrap_or_default(),
                Dna::Moved(_) => return,
            };
            cells.insert(
                String::from_utf8(key.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            );
        },
    )
    .expect("replay the log");
    cells
}

#[test]
fn a_logger_plus_compaction_restores_every_live_cell_into_a_new_cluster() {
    let mut c = Cluster::new("logger", 32, 2);
    let log_dir = c.dir.join("log");
    let log_arg = log_dir.to_str().unwrap().to_string();
    for id in 1..=3 {
        c.start(id, &format!("b{id}"), &[]);
    }
    c.start(9, "b9", &["--role", "logger", "--data-dir", &log_arg]);
    c.wait_settled(2, Duration::from_secs(60));
    let logger_status_doc = c.nodes[&9].status().unwrap();
    assert!(
        logger_status_doc.local.is_empty(),
        "a logger holds no replica"
    );
    assert!(
        std::net::TcpStream::connect(&c.nodes[&9].client).is_err(),
        "a logger serves no clients"
    );

    // 100,000 cells; 20,000 overwritten, 10,000 deleted, 10,000 with a short TTL.
    write(&c.nodes[&1], 0..100_000, "v");
    write(&c.nodes[&2], 0..20_000, "w");
    {
        let mut conn = c.nodes[&3].redis();
        for chunk in (20_000..30_000).collect::<Vec<_>>().chunks(1_000) {
            let keys: Vec<String> = chunk.iter().map(|i| format!("c:{i}")).collect();
            let _: i64 = conn.del(keys).expect("del");
        }
        let mut pipe = redis::pipe();
        for i in (1..100_000).step_by(10) {
            pipe.cmd("PEXPIRE")
                .arg(format!("c:{i}"))
                .arg(1_500)
                .ignore();
        }
        let () = pipe.query(&mut conn).expect("expire");
    }
    let writes = 100_000 + 20_000 + 10_000;
    wait_logged(&c.nodes[&9], writes);
    let metrics = ureq::get(&format!("http://{}/metrics", c.nodes[&9].admin))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(metrics.contains("colony_logger_entries_total"), "{metrics}");

    // Everybody goes: the ordinary nodes one by one, then the logger.
    for id in [1, 2, 3, 9] {
        c.nodes[&id].signal(Signal::SIGTERM);
        let code = c
            .nodes
            .get_mut(&id)
            .unwrap()
            .wait_exit(Duration::from_secs(90));
        assert_eq!(code, Some(0), "node {id} leaves with exit 0");
    }
    std::thread::sleep(Duration::from_millis(1_600)); // the TTLs pass
    let before = replayed(&log_dir);
    let live: usize = (0..100_000).filter(|i| expected(*i).is_some()).count();
    assert_eq!(before.len(), live, "the log holds every live cell");

    let out = colony(&["log", "compact", &log_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<String> = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "one compacted file is left: {files:?}");
    assert!(files[0].starts_with("compacted-"), "{files:?}");
    assert_eq!(
        replayed(&log_dir),
        before,
        "compaction keeps the same state"
    );

    // A new cluster, then the log goes in.
    let mut d = Cluster::new("logger-restore", 16, 2);
    for id in 1..=3 {
        d.start(id, &format!("b{id}"), &[]);
    }
    d.wait_settled(2, Duration::from_secs(60));
    let out = colony(&["restore", &d.nodes[&1].admin, "--from-log", &log_arg]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    check(&d.nodes[&2], 100_000);
}

#[test]
fn a_killed_logger_restarts_on_its_directory_and_fetches_what_it_missed() {
    let mut c = Cluster::new("logger-kill", 16, 2);
    let log_dir = c.dir.join("log");
    let log_arg = log_dir.to_str().unwrap().to_string();
    for id in 1..=3 {
        c.start(id, &format!("b{id}"), &[]);
    }
    let logger_args = ["--role", "logger", "--data-dir", &log_arg];
    c.start(9, "b9", &logger_args);
    c.wait_settled(2, Duration::from_secs(60));
    write(&c.nodes[&1], 0..20_000, "a");
    wait_logged(&c.nodes[&9], 20_000);
    // SIGKILL: no footer, perhaps a torn record; the cluster keeps writing meanwhile.
    c.nodes.get_mut(&9).unwrap().kill();
    write(&c.nodes[&2], 10_000..30_000, "b");
    c.start(9, "b9", &logger_args);
    write(&c.nodes[&3], 30_000..35_000, "c");
    // What it missed comes from the primaries' tails or as snapshots.
    let want: BTreeMap<String, String> = (0..35_000)
        .map(|i| {
            let tag = match i {
                0..10_000 => "a",
                10_000..30_000 => "b",
                _ => "c",
            };
            (format!("c:{i}"), format!("{tag}-{i}"))
        })
        .collect();
    let ok = wait_until(Duration::from_secs(60), || {
        logger_status(&c.nodes[&9]).is_some_and(|l| l.writer.buffered_bytes == 0)
            && replayed(&log_dir) == want
    });
    let got = replayed(&log_dir);
    let missing = want.iter().filter(|(k, v)| got.get(*k) != Some(v)).count();
    assert!(
        ok.is_some(),
        "the restarted logger's log misses {missing} cells: {:?}",
        logger_status(&c.nodes[&9])
    );
}
