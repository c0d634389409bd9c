//! Redis Cluster clients against real colony nodes: the `redis` crate's cluster client
//! reads `CLUSTER SLOTS` and sends every key straight to the node that is its colony's
//! primary; hash tags keep keys together; the slot map agrees with where the nodes
//! themselves route each key (`COLONY`).

mod common;

use common::*;
use redis::Commands;
use std::collections::HashMap;
use std::time::Duration;

/// `CLUSTER SLOTS` as `(first, last, primary "ip:port")` triples.
fn slot_map(con: &mut redis::Connection) -> Vec<(u16, u16, String)> {
    let raw: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(con).unwrap();
    raw.into_iter()
        .map(|range| {
            let redis::Value::Array(items) = range else {
                panic!("a range is an array: {range:?}");
            };
            let first: u16 = redis::from_redis_value_ref(&items[0]).unwrap();
            let last: u16 = redis::from_redis_value_ref(&items[1]).unwrap();
            let (ip, port, _id): (String, u16, String) =
                redis::from_redis_value_ref(&items[2]).unwrap();
            (first, last, format!("{ip}:{port}"))
        })
        .collect()
}

#[test]
fn a_redis_cluster_client_routes_every_key_to_its_primary() {
    let mut c = Cluster::new("rcluster", 16, 2);
    c.start(1, "a", &[]);
    c.start(2, "b", &[]);
    c.start(3, "c", &[]);
    c.wait_settled(2, Duration::from_secs(60));
    let mut plain = c.nodes[&3].redis();

    let info: String = redis::cmd("INFO").arg("cluster").query(&mut plain).unwrap();
    assert!(info.contains("cluster_enabled:1"), "{info}");
    let cinfo: String = redis::cmd("CLUSTER").arg("INFO").query(&mut plain).unwrap();
    assert!(cinfo.contains("cluster_state:ok"), "{cinfo}");
    assert!(cinfo.contains("cluster_slots_assigned:16384"), "{cinfo}");

    // The slot map covers every slot once, and only names the nodes' client ports.
    let map = slot_map(&mut plain);
    let mut next = 0u32;
    for (first, last, primary) in &map {
        assert_eq!(u32::from(*first), next, "gap or overlap in {map:?}");
        next = u32::from(*last) + 1;
        assert!(
            c.nodes.values().any(|n| &n.client == primary),
            "{primary} is no node's client address"
        );
    }
    assert_eq!(next, 16384);
    let owners: std::collections::BTreeSet<&String> = map.iter().map(|r| &r.2).collect();
    assert!(
        owners.len() >= 2,
        "primaries spread over the nodes: {map:?}"
    );

    // Every key: the slot map's primary is the primary the nodes route to.
    for i in 0..200 {
        let key = format!("k{i}");
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&key)
            .query(&mut plain)
            .unwrap();
        let by_map = &map.iter().find(|r| r.0 <= slot && slot <= r.1).unwrap().2;
        let loc: Vec<redis::Value> = redis::cmd("COLONY").arg(&key).query(&mut plain).unwrap();
        let fields: HashMap<String, redis::Value> = loc
            .chunks(2)
            .map(|kv| (redis::from_redis_value_ref(&kv[0]).unwrap(), kv[1].clone()))
            .collect();
        let by_node: String = redis::from_redis_value_ref(&fields["primary-client"]).unwrap();
        assert_eq!(by_map, &by_node, "key {key} (slot {slot})");
    }

    // A real cluster client: writes and reads go to the primaries it found.
    let client =
        redis::cluster::ClusterClient::new(vec![format!("redis://{}/", c.nodes[&1].client)])
            .unwrap();
    let mut cluster = client.get_connection().unwrap();
    for i in 0..300 {
        let _: () = cluster.set(format!("k{i}"), format!("v{i}")).unwrap();
    }
    for i in 0..300 {
        let v: String = cluster.get(format!("k{i}")).unwrap();
        assert_eq!(v, format!("v{i}"));
        // And the same through a node that forwards.
        let w: String = plain.get(format!("k{i}")).unwrap();
        assert_eq!(w, format!("v{i}"));
    }
    // Hash tags: keys with one tag share a slot, so a cluster client may MGET them.
    let _: () = cluster.set("{cart:7}:items", "3").unwrap();
    let _: () = cluster.set("{cart:7}:owner", "ann").unwrap();
    let both: Vec<String> = cluster.mget(&["{cart:7}:items", "{cart:7}:owner"]).unwrap();
    assert_eq!(both, ["3", "ann"]);
    let n: i64 = cluster.incr("{cart:7}:items", 2).unwrap();
    assert_eq!(n, 5);
    let _: () = redis::cmd("HSET")
        .arg("h")
        .arg("f")
        .arg("x")
        .query(&mut cluster)
        .unwrap();
    let h: String = cluster.hget("h", "f").unwrap();
    assert_eq!(h, "x");
}
