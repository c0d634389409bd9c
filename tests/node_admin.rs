//! The admin side of a real node: `/events` ids and resuming with `Last-Event-ID`,
//! `/metrics` in Prometheus text, `colony status` tables, and a node with another
//! colony count refused at the handshake.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::Duration;

/// Reads `n` events (id, data) from a node's stream, sending `last` as Last-Event-ID.
fn read_events(admin: &str, last: Option<&str>, n: usize) -> Vec<(String, String)> {
    let mut req = ureq::get(&format!("http://{admin}/events?from=start"));
    if let Some(id) = last {
        req = req.set("Last-Event-ID", id);
    }
    let reader = BufReader::new(req.call().expect("subscribe").into_reader());
    let mut out = Vec::new();
    let mut id = String::new();
    for line in reader.lines() {
        let line = line.expect("line");
        if let Some(v) = line.strip_prefix("id: ") {
            id = v.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            out.push((id.clone(), data.to_string()));
            if out.len() == n {
                break;
            }
        }
    }
    out
}

#[test]
fn events_resume_metrics_status_and_colony_count_mismatch() {
    let mut c = Cluster::new("admin", 16, 2);
    c.start(1, "a", &[]);
    c.start(2, "b", &[]);
    c.wait_settled(2, Duration::from_secs(60));
    let admin = c.nodes[&1].admin.clone();

    // Ids are "<incarnation>-<n>", increasing; resuming after the 3rd gives the 4th on.
    let first = read_events(&admin, None, 6);
    assert_eq!(first.len(), 6);
    let seq = |id: &str| id.rsplit('-').next().unwrap().parse::<u64>().unwrap();
    assert!(
        first.windows(2).all(|w| seq(&w[1].0) == seq(&w[0].0) + 1),
        "{first:?}"
    );
    let resumed = read_events(&admin, Some(&first[2].0), 3);
    assert_eq!(
        resumed,
        first[3..6].to_vec(),
        "resumed right after the last seen id"
    );
    assert!(first[0].1.contains("\"event\":"), "{}", first[0].1);

    let metrics = ureq::get(&format!("http://{admin}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for name in [
        "colony_members_alive",
        "colony_colonies_under_replicated",
        "colony_migrations_in_flight",
        "colony_replication_lag_mutations",
        "colony_cells",
        "colony_writes_per_second",
        "colony_writes_total",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("colony_members_alive{host=\"1\"} 2"),
        "{metrics}"
    );

    let out = Command::new(EXE).args(["status", &admin]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("HOST") && text.contains("COLONY") && text.contains("0 under-replicated"),
        "{text}"
    );

    // A node created for another colony count is refused by the cluster.
    let mut other = Cluster::new("admin-other", 32, 2);
    other.secret = c.secret.clone();
    other.start(9, "z", &["--join", &c.nodes[&1].peer]);
    std::thread::sleep(Duration::from_secs(2));
    let s = c.nodes[&1].status().unwrap();
    assert!(
        s.members.iter().all(|m| m.id != 9),
        "a node with 32 colonies joined a 16-colony cluster"
    );
    let log = other.nodes[&9].log_text();
    assert!(
        log.contains("colonies") || log.contains("refused"),
        "told why:\n{log}"
    );
}
