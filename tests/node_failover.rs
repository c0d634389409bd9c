//! Real processes, real Redis client: kill the host with the most primaries and check
//! that every acknowledged write survives, promotions are announced on the event
//! stream, and every colony is back to N replicas on distinct hosts.

mod common;

use common::*;
use redis::Commands;
use std::collections::BTreeMap;
use std::time::Duration;

const CELLS: usize = 10_000;

#[test]
fn sigkill_of_the_busiest_host_loses_no_acknowledged_write() {
    let mut c = Cluster::new("failover", 64, 3);
    for (id, b) in [(1, "a"), (2, "b"), (3, "c"), (4, "d")] {
        c.start(id, b, &[]);
    }
    c.wait_settled(3, Duration::from_secs(60));

    // 10,000 cells through a real client, pipelined 100 at a time, spread over nodes.
    let mut acked = BTreeMap::new();
    let ids: Vec<u32> = c.nodes.keys().copied().collect();
    for (batch, chunk) in (0..CELLS).collect::<Vec<_>>().chunks(100).enumerate() {
        let node = &c.nodes[&ids[batch % ids.len()]];
        let mut conn = node.redis();
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.set(format!("cell:{i}"), format!("dna-{i}"));
        }
        let replies: Vec<String> = pipe.query(&mut conn).expect("pipelined SETs");
        assert!(replies.iter().all(|r| r == "OK"));
        for i in chunk {
            acked.insert(format!("cell:{i}"), format!("dna-{i}"));
        }
    }
    assert_eq!(acked.len(), CELLS);

    // The host holding the most primaries, per the directory.
    let s = c.nodes[&1].status().expect("status");
    let mut primaries: BTreeMap<u32, usize> = BTreeMap::new();
    for d in &s.directory {
        *primaries.entry(d.primary).or_default() += 1;
    }
    let (&victim, &held) = primaries
        .iter()
        .max_by_key(|(id, n)| (**n, **id))
        .expect("primaries");
    assert!(held > 0);
    let watchers: Vec<_> = c
        .running()
        .filter(|n| n.id != victim)
        .map(|n| collect_events(&n.admin))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    c.nodes.get_mut(&victim).expect("victim").kill();

    c.wait_settled(3, Duration::from_secs(60));

    // Every colony the victim led was taken over by a promotion announced on a
    // survivor's event stream (a failover, or a hand-off that was already under way).
    let led: Vec<u32> = s
        .directory
        .iter()
        .filter(|d| d.primary == victim)
        .map(|d| d.colony)
        .collect();
    let promoted: std::collections::BTreeSet<u64> = watchers
        .iter()
        .flat_map(|w| {
            w.lock()
                .unwrap()
                .iter()
                .filter(|e| e["event"] == "colony_promoted")
                .filter_map(|e| e["colony"].as_u64())
                .collect::<Vec<_>>()
        })
        .collect();
    for colony in &led {
        assert!(
            promoted.contains(&u64::from(*colony)),
            "no promotion announced for colony {colony}"
        );
    }
    let failovers: usize = watchers
        .iter()
        .map(|w| count(w, "colony_promoted", Some("failover")))
        .sum();
    assert!(failovers >= 1, "the kill caused failover promotions");
    let after = c.running().next().and_then(|n| n.status()).expect("status");
    for d in after.directory.iter().filter(|d| led.contains(&d.colony)) {
        assert_ne!(d.primary, victim);
        let before = s
            .directory
            .iter()
            .find(|b| b.colony == d.colony)
            .expect("known colony");
        let term = |e: &str| {
            e.split('.')
                .next()
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0)
        };
        assert!(
            term(&d.epoch) > term(&before.epoch),
            "colony {} has a new epoch",
            d.colony
        );
    }
    let dead_seen: usize = watchers.iter().map(|w| count(w, "host_dead", None)).sum();
    assert!(dead_seen >= 1, "no survivor announced the death");

    // Every acknowledged write: a few hundred with GET through each survivor in turn,
    // then all of them with MGET through one.
    let survivors: Vec<u32> = c.running().map(|n| n.id).collect();
    for (k, (key, want)) in acked.iter().take(300).enumerate() {
        let mut conn = c.nodes[&survivors[k % survivors.len()]].redis();
        let got: Option<String> = conn.get(key).expect("GET");
        assert_eq!(
            got.as_deref(),
            Some(want.as_str()),
            "{key} lost after the kill"
        );
    }
    let mut conn = c.nodes[&survivors[0]].redis();
    let keys: Vec<&String> = acked.keys().collect();
    for chunk in keys.chunks(500) {
        let got: Vec<Option<String>> = conn.mget(chunk.to_vec()).expect("MGET");
        for (key, value) in chunk.iter().zip(got) {
            assert_eq!(
                value.as_deref(),
                Some(acked[*key].as_str()),
                "{key} lost after the kill"
            );
        }
    }
}
