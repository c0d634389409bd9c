//! The storage node with real processes: it opens no client port, keeps the replicas it
//! takes in value logs on disk, counts for two replicas, and when the ordinary nodes
//! leave one by one it ends up holding every colony; ordinary nodes started again
//! take the colonies back from it, and every live cell reads back.

mod common;

use colony::admin::report::StatusReport;
use common::*;
use std::time::Duration;

const STORAGE: u32 = 9;

/// What a host's copy counts for: the storage node stands in for two.
fn slots(host: u32) -> u32 {
    if host == STORAGE {
        2
    } else {
        1
    }
}

/// Every running node sees the running nodes alive, and places every colony on
/// distinct running hosts that count for `target` replicas, its primary on an ordinary
/// host whenever one runs.
fn placed(c: &Cluster, target: u32) -> bool {
    let ordinary = c.running().any(|n| n.id != STORAGE);
    c.spread(|hosts, primary| {
        hosts.iter().map(|h| slots(*h)).sum::<u32>() >= target && (!ordinary || primary != STORAGE)
    })
}

fn wait_placed(c: &Cluster, target: u32) {
    let ok = wait_until(Duration::from_secs(120), || placed(c, target));
    assert!(
        ok.is_some(),
        "colonies not placed on {target} replicas' worth of hosts: {:?}",
        c.running()
            .map(|n| (n.id, n.status().map(|s| s.directory)))
            .collect::<Vec<_>>()
    );
}

fn storage_status(c: &Cluster) -> StatusReport {
    c.nodes[&STORAGE].status().expect("storage node status")
}

/// Value log files in the storage node's data directory.
fn value_logs(c: &Cluster) -> usize {
    std::fs::read_dir(c.dir.join("storage").join("values"))
        .map(|d| d.filter_map(|e| e.ok()).count())
        .unwrap_or(0)
}

#[test]
fn a_storage_node_holds_every_colony_when_the_others_leave_and_gives_it_back() {
    let mut c = Cluster::new("storage", 32, 3);
    let data = c.dir.join("storage").display().to_string();
    for id in 1..=3 {
        c.start(id, &format!("b{id}"), &[]);
    }
    c.start(STORAGE, "b9", &["--role", "storage", "--data-dir", &data]);
    wait_placed(&c, 3);
    assert!(
        std::net::TcpStream::connect(&c.nodes[&STORAGE].client).is_err(),
        "a storage node serves no clients"
    );
    let me = storage_status(&c)
        .members
        .into_iter()
        .find(|m| m.id == STORAGE)
        .unwrap();
    assert_eq!(me.role, "storage");

    load_cells(&c.nodes[&1], 100_000, "v");
    std::thread::sleep(Duration::from_secs(2)); // the short TTLs pass

    // The ordinary nodes leave one at a time; each leave hands its colonies off.
    for id in [1u32, 2, 3] {
        c.nodes.get_mut(&id).unwrap().leave(Duration::from_secs(90));
        // With two ordinary nodes and the storage node N = 3 still fits; after that
        // the population is what the hosts left can hold.
        wait_placed(&c, if id == 1 { 3 } else { 2 });
    }
    let s = storage_status(&c);
    assert_eq!(s.local.len() as u32, c.colonies, "it holds every colony");
    assert!(s.local.iter().all(|r| r.role == "primary" && r.writable));
    let cells: u64 = s.local.iter().map(|r| r.cells).sum();
    assert!(
        (90_000..=100_000).contains(&cells),
        "every live cell is on the storage node: {cells}"
    );
    assert_eq!(
        value_logs(&c),
        c.colonies as usize,
        "one value log per colony"
    );

    // Ordinary nodes start again (new ids), joining through the storage node.
    for id in 4..=6 {
        c.start(id, &format!("b{id}"), &[]);
    }
    wait_placed(&c, 3);
    check_loaded(&c.nodes[&4], 100_000, "v");
    check_loaded(&c.nodes[&6], 100_000, "v");
    // The storage node keeps copies, but no primary while ordinary nodes run.
    let s = storage_status(&c);
    assert!(s.local.iter().all(|r| r.role == "secondary"));
    assert_eq!(
        value_logs(&c),
        s.local.len(),
        "dropped replicas' files are gone"
    );
}
