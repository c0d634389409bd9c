//! The Redis Cluster commands, so cluster-aware clients (`redis-cli -c`,
//! `redis-benchmark --cluster`, redis-py's `RedisCluster`, Jedis, Lettuce, go-redis...)
//! send each key straight to its colony's primary instead of through whichever node
//! they happen to be connected to.
//!
//! Keys map to the 16384 hash slots of Redis Cluster (CRC16, hash tags included), and
//! each colony owns a contiguous range of slots ([`crate::core::types::colony_slots`]),
//! so the directory says which node is primary for which slots:
//! - `CLUSTER SLOTS` / `CLUSTER SHARDS`: slot ranges with their primary and the
//!   colonies' secondaries as replicas (adjacent colonies with the same replicas merge);
//! - `CLUSTER NODES`: one line per data node, as a master with the slots it is primary
//!   for (a colony node is primary for some colonies and secondary for others, which
//!   Redis's one-role-per-node lines cannot say; `SLOTS` and `SHARDS` carry it);
//! - `CLUSTER INFO`, `CLUSTER KEYSLOT`, `CLUSTER MYID`; `READONLY`, `READWRITE` and
//!   `ASKING` are accepted (every read is served by the primary anyway).
//!
//! colony never answers `MOVED`: a node forwards a request for a key it is not primary
//! for, so a client whose slot map is stale (after a failover or a migration) still gets
//! the right answer, one hop slower, until it refreshes its map.

use super::command::ClientCommand;
use super::errors::{not_supported, unknown_subcommand, wrong_arity};
use super::value::RespValue;
use crate::admin::report::{DirReport, MemberReport, StatusReport};
use crate::core::blob::Blob;
use crate::core::types::{colony_slots, key_slot, HostId, SLOTS};
use crate::wire::Addrs;

/// The `CLUSTER` subcommands colony answers (and the cluster-mode connection commands).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterSub {
    Slots,
    Shards,
    Nodes,
    Info,
    MyId,
    /// `CLUSTER KEYSLOT key`: answered without the cluster.
    KeySlot(Blob),
    /// `READONLY`, `READWRITE`, `ASKING`: `+OK`.
    Accepted,
}

impl ClusterSub {
    /// The answer when it needs no view of the cluster (`KEYSLOT`, `READONLY`...).
    pub fn reply_without_status(&self) -> Option<RespValue> {
        match self {
            ClusterSub::KeySlot(key) => Some(RespValue::Int(i64::from(key_slot(key)))),
            ClusterSub::Accepted => Some(RespValue::ok()),
            _ => None,
        }
    }

    /// Whether the answer needs the node's view of the cluster.
    pub fn needs_status(&self) -> bool {
        self.reply_without_status().is_none()
    }
}

/// `CLUSTER subcommand ...`.
pub(super) fn parse_cluster(args: &[Blob]) -> Result<ClientCommand, String> {
    let sub = args.get(1).map(|a| a.as_slice()).unwrap_or_default();
    let is = |name: &str| sub.eq_ignore_ascii_case(name.as_bytes());
    let exact = |name: &str, count: usize, sub: ClusterSub| {
        if args.len() == count {
            Ok(ClientCommand::Cluster(sub))
        } else {
            Err(wrong_arity(&format!("cluster|{name}")))
        }
    };
    if is("SLOTS") {
        exact("slots", 2, ClusterSub::Slots)
    } else if is("SHARDS") {
        exact("shards", 2, ClusterSub::Shards)
    } else if is("NODES") {
        exact("nodes", 2, ClusterSub::Nodes)
    } else if is("INFO") {
        exact("info", 2, ClusterSub::Info)
    } else if is("MYID") {
        exact("myid", 2, ClusterSub::MyId)
    } else if is("KEYSLOT") {
        let key = args.get(2).cloned().unwrap_or_default();
        exact("keyslot", 3, ClusterSub::KeySlot(key))
    } else {
        for refused in [
            "ADDSLOTS",
            "ADDSLOTSRANGE",
            "DELSLOTS",
            "DELSLOTSRANGE",
            "FAILOVER",
            "FORGET",
            "MEET",
            "REPLICATE",
            "RESET",
            "SETSLOT",
            "COUNTKEYSINSLOT",
            "GETKEYSINSLOT",
            "REPLICAS",
            "SLAVES",
            "LINKS",
        ] {
            if is(refused) {
                return Err(not_supported(&format!(
                    "CLUSTER {refused} (colony places colonies itself)"
                )));
            }
        }
        Err(unknown_subcommand(sub, "CLUSTER"))
    }
}

/// A node's id in `CLUSTER` replies: 40 hex digits, as Redis's node ids, made of the
/// host id so it reads back to it.
pub fn node_id(host: HostId) -> String {
    format!("{host:040x}")
}

/// Where clients reach a node: its client address, with the host of its advertised
/// peer address when the client port listens on a wildcard (`0.0.0.0:6379`).
pub fn client_endpoint(addrs: &Addrs) -> (String, u16) {
    let split = |a: &str| -> (String, u16) {
        match a.rsplit_once(':') {
            Some((h, p)) => (
                h.trim_matches(['[', ']']).to_string(),
                p.parse().unwrap_or(0),
            ),
            None => (a.to_string(), 0),
        }
    };
    let (host, port) = split(&addrs.client);
    let wildcard = host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    if wildcard {
        (split(&addrs.peer).0, port)
    } else {
        (host, port)
    }
}

/// The answer to a `CLUSTER` subcommand (or READONLY/READWRITE/ASKING). `status` is the
/// node's `/status` report; `KEYSLOT` and the accepted commands ignore it.
pub fn cluster_reply(sub: &ClusterSub, status: &StatusReport) -> RespValue {
    if let Some(reply) = sub.reply_without_status() {
        return reply;
    }
    match sub {
        ClusterSub::KeySlot(_) | ClusterSub::Accepted => RespValue::Nil,
        ClusterSub::MyId => RespValue::Bulk(node_id(status.host).into()),
        ClusterSub::Slots => slots(status),
        ClusterSub::Shards => shards(status),
        ClusterSub::Nodes => RespValue::Bulk(nodes(status).into()),
        ClusterSub::Info => RespValue::Bulk(info(status).into()),
    }
}

/// A primary (and the secondaries of its colonies): one shard in Redis's words.
type ReplicaSet = (HostId, Vec<HostId>);

/// Consecutive colonies with the same primary (and, when `with_replicas`, the same
/// secondaries), as slot ranges: `(first, last, primary, secondaries)`.
fn ranges(status: &StatusReport, with_replicas: bool) -> Vec<(u16, u16, HostId, Vec<HostId>)> {
    let mut dir: Vec<&DirReport> = status.directory.iter().collect();
    dir.sort_by_key(|d| d.colony);
    let mut out = Vec::<(u16, u16, HostId, Vec<HostId>)>::new();
    for d in dir {
        let Some((first, last)) = colony_slots(d.colony, status.colonies) else {
            continue;
        };
        let secondaries = if with_replicas {
            d.secondaries.clone()
        } else {
            Vec::new()
        };
        match out.last_mut() {
            Some(r) if r.1 + 1 == first && r.2 == d.primary && r.3 == secondaries => r.1 = last,
            _ => out.push((first, last, d.primary, secondaries)),
        }
    }
    out
}

fn member(status: &StatusReport, host: HostId) -> Option<&MemberReport> {
    status.members.iter().find(|m| m.id == host)
}

/// `[ip, port, id]` of a node, or `None` when its client address is unknown.
fn node_triple(status: &StatusReport, host: HostId) -> Option<Vec<RespValue>> {
    let (ip, port) = client_endpoint(member(status, host)?.addrs.as_ref()?);
    Some(vec![
        RespValue::Bulk(ip.into()),
        RespValue::Int(i64::from(port)),
        RespValue::Bulk(node_id(host).into()),
    ])
}

fn slots(status: &StatusReport) -> RespValue {
    let mut out = Vec::new();
    for (first, last, primary, secondaries) in ranges(status, true) {
        let Some(p) = node_triple(status, primary) else {
            continue;
        };
        let mut item = vec![
            RespValue::Int(i64::from(first)),
            RespValue::Int(i64::from(last)),
            RespValue::Array(p),
        ];
        item.extend(
            secondaries
                .iter()
                .filter_map(|s| node_triple(status, *s))
                .map(RespValue::Array),
        );
        out.push(RespValue::Array(item));
    }
    RespValue::Array(out)
}

fn bulk(text: &str) -> RespValue {
    RespValue::Bulk(Blob::from(text))
}

fn shards(status: &StatusReport) -> RespValue {
    // One shard per (primary, secondaries) set, with every slot range it serves.
    let mut groups: Vec<(ReplicaSet, Vec<RespValue>)> = Vec::new();
    for (first, last, primary, secondaries) in ranges(status, true) {
        let key = (primary, secondaries);
        let slots = [
            RespValue::Int(i64::from(first)),
            RespValue::Int(i64::from(last)),
        ];
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, s)) => s.extend(slots),
            None => groups.push((key, slots.to_vec())),
        }
    }
    let node = |host: HostId, role: &str| -> Option<RespValue> {
        let m = member(status, host)?;
        let (ip, port) = client_endpoint(m.addrs.as_ref()?);
        let health = if m.state == "alive" {
            "online"
        } else {
            "failed"
        };
        Some(RespValue::Array(vec![
            bulk("id"),
            bulk(&node_id(host)),
            bulk("port"),
            RespValue::Int(i64::from(port)),
            bulk("ip"),
            bulk(&ip),
            bulk("endpoint"),
            bulk(&ip),
            bulk("role"),
            bulk(role),
            bulk("replication-offset"),
            RespValue::Int(0),
            bulk("health"),
            bulk(health),
        ]))
    };
    RespValue::Array(
        groups
            .into_iter()
            .map(|((primary, secondaries), slots)| {
                let nodes = std::iter::once(node(primary, "master"))
                    .chain(secondaries.iter().map(|s| node(*s, "replica")))
                    .flatten()
                    .collect();
                RespValue::Array(vec![
                    bulk("slots"),
                    RespValue::Array(slots),
                    bulk("nodes"),
                    RespValue::Array(nodes),
                ])
            })
            .collect(),
    )
}

/// The data nodes (not loggers) with a known client address.
fn data_members(status: &StatusReport) -> impl Iterator<Item = (&MemberReport, &Addrs)> {
    status
        .members
        .iter()
        .filter(|m| m.role != "logger" && m.state != "left")
        .filter_map(|m| Some((m, m.addrs.as_ref()?)))
}

fn nodes(status: &StatusReport) -> String {
    let ranges = ranges(status, false);
    let mut out = String::new();
    for (m, addrs) in data_members(status) {
        let (ip, port) = client_endpoint(addrs);
        let bus = addrs
            .peer
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .unwrap_or(0);
        let mut flags = if m.id == status.host {
            "myself,master".to_string()
        } else {
            "master".to_string()
        };
        let alive = m.state == "alive" || m.state == "leaving";
        if !alive {
            flags.push_str(",fail");
        }
        let link = if alive { "connected" } else { "disconnected" };
        out.push_str(&format!(
            "{} {ip}:{port}@{bus} {flags} - 0 0 0 {link}",
            node_id(m.id)
        ));
        for (first, last, _, _) in ranges.iter().filter(|r| r.2 == m.id) {
            if first == last {
                out.push_str(&format!(" {first}"));
            } else {
                out.push_str(&format!(" {first}-{last}"));
            }
        }
        out.push('\n');
    }
    out
}

fn info(status: &StatusReport) -> String {
    let ranges = ranges(status, false);
    let assigned: u32 = ranges
        .iter()
        .map(|(first, last, _, _)| u32::from(last - first) + 1)
        .sum();
    let ok: u32 = ranges
        .iter()
        .filter(|r| member(status, r.2).is_some_and(|m| m.state == "alive" || m.state == "leaving"))
        .map(|(first, last, _, _)| u32::from(last - first) + 1)
        .sum();
    let known = data_members(status).count();
    let mut primaries: Vec<HostId> = ranges.iter().map(|r| r.2).collect();
    primaries.sort_unstable();
    primaries.dedup();
    let state = if ok == SLOTS && status.quorum {
        "ok"
    } else {
        "fail"
    };
    format!(
        "cluster_enabled:1\r\ncluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\n\
         cluster_slots_ok:{ok}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\n\
         cluster_known_nodes:{known}\r\ncluster_size:{}\r\ncluster_current_epoch:0\r\n\
         cluster_my_epoch:0\r\n",
        assigned - ok,
        primaries.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::parse;

    fn member(id: HostId, state: &str, client: &str, peer: &str) -> MemberReport {
        MemberReport {
            id,
            state: state.into(),
            incarnation: 1,
            box_name: format!("b{id}"),
            zone: "z".into(),
            role: "data".into(),
            addrs: Some(Addrs {
                peer: peer.into(),
                client: client.into(),
                admin: "127.0.0.1:0".into(),
            }),
            cpu_used: 0.0,
            cpu_capacity: 1.0,
            memory_used: 0,
            memory_capacity: 1,
            replicas: 0,
            primaries: 0,
        }
    }

    /// Four colonies over 3 hosts: 0 and 1 led by host 1 (secondary 2), 2 by host 2
    /// (secondary 3), 3 by host 1 (secondary 3). Host 3 is dead.
    fn status() -> StatusReport {
        let dir = |colony, primary, secondaries: &[HostId]| DirReport {
            colony,
            epoch: "1.1".into(),
            primary,
            secondaries: secondaries.to_vec(),
        };
        StatusReport {
            host: 2,
            incarnation: 1,
            cluster: "t".into(),
            state: "active".into(),
            quorum: true,
            colonies: 4,
            replicas: 2,
            target: 2,
            members: vec![
                member(1, "alive", "127.0.0.1:7001", "127.0.0.1:8001"),
                member(2, "alive", "0.0.0.0:7002", "10.0.0.2:8002"),
                member(3, "dead", "127.0.0.1:7003", "127.0.0.1:8003"),
            ],
            directory: vec![
                dir(3, 1, &[3]),
                dir(1, 1, &[2]),
                dir(0, 1, &[2]),
                dir(2, 2, &[3]),
            ],
            local: Vec::new(),
            migrations: Vec::new(),
            logger: None,
        }
    }

    fn int(v: &RespValue) -> i64 {
        match v {
            RespValue::Int(n) => *n,
            other => panic!("not an integer: {other:?}"),
        }
    }

    fn items(v: &RespValue) -> &[RespValue] {
        match v {
            RespValue::Array(a) => a,
            other => panic!("not an array: {other:?}"),
        }
    }

    #[test]
    fn parses_the_subcommands_and_refuses_the_rest_clearly() {
        let cmd = |s: &str| parse(s.split(' ').map(Blob::from).collect());
        assert_eq!(
            cmd("cluster slots"),
            Ok(ClientCommand::Cluster(ClusterSub::Slots))
        );
        assert_eq!(
            cmd("CLUSTER KEYSLOT foo"),
            Ok(ClientCommand::Cluster(ClusterSub::KeySlot(b"foo".into())))
        );
        assert_eq!(
            cmd("READONLY"),
            Ok(ClientCommand::Cluster(ClusterSub::Accepted))
        );
        assert!(cmd("CLUSTER SLOTS extra")
            .unwrap_err()
            .contains("wrong number"));
        assert!(cmd("CLUSTER KEYSLOT").unwrap_err().contains("wrong number"));
        assert!(cmd("CLUSTER MEET 1.2.3.4 5")
            .unwrap_err()
            .contains("not supported"));
        assert!(cmd("CLUSTER FROB")
            .unwrap_err()
            .contains("unknown subcommand"));
    }

    #[test]
    fn keyslot_is_answered_as_redis_does() {
        let s = status();
        assert_eq!(
            cluster_reply(&ClusterSub::KeySlot(b"foo".into()), &s),
            RespValue::Int(12182)
        );
        assert_eq!(
            cluster_reply(&ClusterSub::MyId, &s),
            RespValue::Bulk(b"0000000000000000000000000000000000000002".into())
        );
    }

    #[test]
    fn slots_cover_each_colony_with_its_primary_first_and_merge_equal_neighbours() {
        let s = status();
        let reply = cluster_reply(&ClusterSub::Slots, &s);
        let ranges = items(&reply);
        // Colonies 0 and 1 merge (same primary, same secondary); 2 and 3 stand alone.
        assert_eq!(ranges.len(), 3, "{reply:?}");
        let (c0, c1) = (colony_slots(0, 4).unwrap(), colony_slots(1, 4).unwrap());
        assert_eq!(int(&items(&ranges[0])[0]), i64::from(c0.0));
        assert_eq!(int(&items(&ranges[0])[1]), i64::from(c1.1));
        let primary = items(&items(&ranges[0])[2]);
        assert_eq!(primary[0], RespValue::Bulk(b"127.0.0.1".into()));
        assert_eq!(int(&primary[1]), 7001);
        // Host 2 listens for clients on a wildcard: its peer address's host is given.
        let replica = items(&items(&ranges[0])[3]);
        assert_eq!(replica[0], RespValue::Bulk(b"10.0.0.2".into()));
        assert_eq!(int(&replica[1]), 7002);
        // The last range ends at the last slot.
        assert_eq!(int(&items(&ranges[2])[1]), i64::from(SLOTS as u16 - 1));
    }

    #[test]
    fn nodes_lists_each_data_node_with_the_slots_it_is_primary_for() {
        let s = status();
        let RespValue::Bulk(text) = cluster_reply(&ClusterSub::Nodes, &s) else {
            panic!("bulk");
        };
        let text = String::from_utf8(text.to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let (c0, c1, c2, c3) = (
            colony_slots(0, 4).unwrap(),
            colony_slots(1, 4).unwrap(),
            colony_slots(2, 4).unwrap(),
            colony_slots(3, 4).unwrap(),
        );
        assert_eq!(
            lines[0],
            format!(
                "{} 127.0.0.1:7001@8001 master - 0 0 0 connected {}-{} {}-{}",
                node_id(1),
                c0.0,
                c1.1,
                c3.0,
                c3.1
            )
        );
        assert_eq!(
            lines[1],
            format!(
                "{} 10.0.0.2:7002@8002 myself,master - 0 0 0 connected {}-{}",
                node_id(2),
                c2.0,
                c2.1
            )
        );
        assert!(lines[2].contains("master,fail - 0 0 0 disconnected"));
        assert!(!lines[2].ends_with(char::is_numeric));
    }

    #[test]
    fn info_fails_while_slots_are_served_by_a_dead_primary() {
        let mut s = status();
        let RespValue::Bulk(text) = cluster_reply(&ClusterSub::Info, &s) else {
            panic!("bulk");
        };
        let text = String::from_utf8(text.to_vec()).unwrap();
        assert!(text.contains("cluster_state:ok"), "{text}");
        assert!(text.contains("cluster_slots_assigned:16384"));
        assert!(text.contains("cluster_known_nodes:3"));
        assert!(text.contains("cluster_size:2"));
        s.members[1].state = "dead".into();
        let RespValue::Bulk(text) = cluster_reply(&ClusterSub::Info, &s) else {
            panic!("bulk");
        };
        let text = String::from_utf8(text.to_vec()).unwrap();
        assert!(text.contains("cluster_state:fail"), "{text}");
        let c2 = colony_slots(2, 4).unwrap();
        assert!(text.contains(&format!("cluster_slots_fail:{}", c2.1 - c2.0 + 1)));
    }

    #[test]
    fn shards_group_ranges_by_replica_set_with_roles_and_health() {
        let s = status();
        let reply = cluster_reply(&ClusterSub::Shards, &s);
        let shards = items(&reply);
        assert_eq!(shards.len(), 3, "{reply:?}");
        let first = items(&shards[0]);
        assert_eq!(first[0], bulk("slots"));
        assert_eq!(items(&first[1]).len(), 2);
        let nodes = items(&first[3]);
        assert_eq!(nodes.len(), 2);
        assert_eq!(items(&nodes[0])[9], bulk("master"));
        assert_eq!(items(&nodes[1])[9], bulk("replica"));
        // Colony 3's secondary is the dead host 3.
        let last = items(&shards[2]);
        let nodes = items(&last[3]);
        assert_eq!(items(&nodes[1])[13], bulk("failed"));
    }
}
