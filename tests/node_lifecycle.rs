//! Real processes: a graceful leave loses nothing and promotes nothing; a host that was
//! declared dead while frozen comes back undead, drops its stale replicas and never
//! serves stale data; a killed host restarted with the same id rejoins.

mod common;

use common::*;
use nix::sys::signal::Signal;
use redis::Commands;
use std::time::Duration;

fn write_cells(node: &NodeProc, n: usize, tag: &str) {
    let mut conn = node.redis();
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.set(format!("k:{i}"), format!("{tag}-{i}"));
        }
        let replies: Vec<String> = pipe.query(&mut conn).expect("SETs");
        assert!(replies.iter().all(|r| r == "OK"));
    }
}

fn assert_cells(node: &NodeProc, n: usize, tag: &str) {
    let mut conn = node.redis();
    let keys: Vec<String> = (0..n).map(|i| format!("k:{i}")).collect();
    for chunk in keys.chunks(500) {
        let got: Vec<Option<String>> = conn.mget(chunk.to_vec()).expect("MGET");
        for (key, value) in chunk.iter().zip(got) {
            let i: usize = key[2..].parse().unwrap();
            assert_eq!(
                value,
                Some(format!("{tag}-{i}")),
                "{key} via node {}",
                node.id
            );
        }
    }
}

#[test]
fn graceful_leave_promotes_nothing_and_loses_nothing() {
    let mut c = Cluster::new("leave", 32, 3);
    for (id, b) in [(1, "a"), (2, "b"), (3, "c"), (4, "d")] {
        c.start(id, b, &[]);
    }
    c.wait_settled(3, Duration::from_secs(60));
    write_cells(&c.nodes[&1], 3_000, "v1");
    let watchers: Vec<_> = [1, 2, 4]
        .iter()
        .map(|id| collect_events(&c.nodes[id].admin))
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    c.nodes[&3].signal(Signal::SIGTERM);
    let code = c
        .nodes
        .get_mut(&3)
        .unwrap()
        .wait_exit(Duration::from_secs(30));
    if code.is_none() {
        for id in [1, 2, 4] {
            let s = c.nodes[&id].status().unwrap();
            eprintln!(
                "node {id}: members {:?}\nlocal {}",
                s.members
                    .iter()
                    .map(|m| (
                        m.id,
                        m.state.clone(),
                        m.replicas,
                        m.primaries,
                        m.cpu_used,
                        m.memory_used >> 20
                    ))
                    .collect::<Vec<_>>(),
                serde_json::to_string(&s.local).unwrap()
            );
        }
    }
    if code.is_none() {
        let held = c.nodes[&3].status().map(|s| s.local).unwrap_or_default();
        for r in held {
            for id in [1, 2, 4] {
                let url = format!("http://{}/debug/colony/{}", c.nodes[&id].admin, r.colony);
                if let Ok(resp) = ureq::get(&url).call() {
                    eprintln!(
                        "colony {} on node {id}:\n{}",
                        r.colony,
                        resp.into_string().unwrap_or_default()
                    );
                }
            }
        }
    }
    let leaver = c.nodes.get_mut(&3).unwrap();
    if code.is_none() {
        let stuck = leaver
            .status()
            .map(|s| serde_json::to_string(&s.local).unwrap_or_default());
        panic!(
            "the leave did not finish in 30 s; replicas still held: {stuck:?}; log:\n{}",
            leaver.log_text()
        );
    }
    assert_eq!(
        code,
        Some(0),
        "a leave ends with exit code 0; log:\n{}",
        leaver.log_text()
    );
    c.nodes.remove(&3);
    c.wait_settled(3, Duration::from_secs(60));

    let failovers: usize = watchers
        .iter()
        .map(|w| count(w, "colony_promoted", Some("failover")))
        .sum();
    assert_eq!(failovers, 0, "a graceful leave must not cause a failover");
    let dead: usize = watchers.iter().map(|w| count(w, "host_dead", None)).sum();
    assert_eq!(dead, 0, "a leaving host is not declared dead");
    let left: usize = watchers.iter().map(|w| count(w, "host_left", None)).sum();
    assert!(left >= 1, "the leave was announced");
    assert_cells(&c.nodes[&2], 3_000, "v1");
}

#[test]
fn a_frozen_host_comes_back_undead_and_serves_no_stale_data() {
    let mut c = Cluster::new("undead", 32, 3);
    for (id, b) in [(1, "a"), (2, "b"), (3, "c"), (4, "d")] {
        c.start(id, b, &[]);
    }
    c.wait_settled(3, Duration::from_secs(60));
    write_cells(&c.nodes[&1], 1_000, "old");
    let frozen_events = collect_events(&c.nodes[&4].admin);
    std::thread::sleep(Duration::from_millis(300));

    // Freeze host 4: the others declare it dead and promote and re-clone without it.
    c.nodes[&4].signal(Signal::SIGSTOP);
    let others = [1u32, 2, 3];
    wait_until(Duration::from_secs(30), || {
        others.iter().all(|id| {
            c.nodes[id].status().is_some_and(|s| {
                s.members.iter().any(|m| m.id == 4 && m.state == "dead")
                    && s.directory
                        .iter()
                        .all(|d| d.primary != 4 && !d.secondaries.contains(&4))
            })
        })
    })
    .expect("host 4 declared dead and replaced");
    write_cells(&c.nodes[&1], 1_000, "new");

    // Thaw it: it learns it was declared dead, drops what it held, and rejoins.
    c.nodes[&4].signal(Signal::SIGCONT);
    wait_until(Duration::from_secs(30), || {
        count(&frozen_events, "host_undead", None) >= 1
    })
    .unwrap_or_else(|| panic!("no host_undead event; log:\n{}", c.nodes[&4].log_text()));
    c.wait_settled(3, Duration::from_secs(60));
    // Every read through the thawed host sees the new values.
    assert_cells(&c.nodes[&4], 1_000, "new");
}

#[test]
fn a_killed_host_restarted_with_its_id_rejoins_and_serves_current_data() {
    let mut c = Cluster::new("restart", 32, 3);
    for (id, b) in [(1, "a"), (2, "b"), (3, "c")] {
        c.start(id, b, &[]);
    }
    c.wait_settled(3, Duration::from_secs(60));
    write_cells(&c.nodes[&1], 1_000, "v1");
    c.nodes.get_mut(&3).unwrap().kill();
    // Two hosts left: colonies settle on two replicas.
    c.wait_settled(2, Duration::from_secs(60));
    write_cells(&c.nodes[&1], 1_000, "v2");
    c.start(3, "c", &[]);
    c.wait_settled(3, Duration::from_secs(60));
    assert_cells(&c.nodes[&3], 1_000, "v2");
    let s = c.nodes[&3].status().unwrap();
    assert!(
        !s.local.is_empty(),
        "the restarted host holds replicas again"
    );
}
