//! The client port through a real Redis client library (`redis` crate): every command
//! the issue names, pipelining, forwarding from any node, and the COLONY command.

mod common;

use common::*;
use redis::Commands;
use std::time::Duration;

#[test]
fn redis_commands_work_through_any_node() {
    let mut c = Cluster::new("resp", 16, 2);
    c.start(1, "a", &[]);
    c.start(2, "b", &[]);
    c.wait_settled(2, Duration::from_secs(60));
    let mut a = c.nodes[&1].redis();
    let mut b = c.nodes[&2].redis();

    let pong: String = redis::cmd("PING").query(&mut a).unwrap();
    assert_eq!(pong, "PONG");
    let echo: String = redis::cmd("ECHO").arg("hi").query(&mut a).unwrap();
    assert_eq!(echo, "hi");

    // SET and its options; reads through the other node (forwarded to the primary).
    let _: () = a.set("s", "1").unwrap();
    assert_eq!(b.get::<_, String>("s").unwrap(), "1");
    let nx: Option<String> = redis::cmd("SET")
        .arg("s")
        .arg("2")
        .arg("NX")
        .query(&mut a)
        .unwrap();
    assert_eq!(nx, None, "NX on an existing key");
    let xx: Option<String> = redis::cmd("SET")
        .arg("s")
        .arg("3")
        .arg("XX")
        .query(&mut a)
        .unwrap();
    assert_eq!(xx.as_deref(), Some("OK"));
    let xx: Option<String> = redis::cmd("SET")
        .arg("absent")
        .arg("3")
        .arg("XX")
        .query(&mut a)
        .unwrap();
    assert_eq!(xx, None);
    let _: () = redis::cmd("SET")
        .arg("e")
        .arg("v")
        .arg("EX")
        .arg(100)
        .query(&mut a)
        .unwrap();
    let ttl: i64 = b.ttl("e").unwrap();
    assert!((99..=100).contains(&ttl), "TTL {ttl}");
    let _: () = redis::cmd("SET")
        .arg("p")
        .arg("v")
        .arg("PX")
        .arg(300)
        .query(&mut a)
        .unwrap();
    let pttl: i64 = redis::cmd("PTTL").arg("p").query(&mut b).unwrap();
    assert!((1..=300).contains(&pttl), "PTTL {pttl}");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        b.get::<_, Option<String>>("p").unwrap(),
        None,
        "expired with PX"
    );
    assert_eq!(a.ttl::<_, i64>("s").unwrap(), -1);
    assert_eq!(a.ttl::<_, i64>("absent").unwrap(), -2);
    assert!(a.expire::<_, bool>("s", 50).unwrap());
    assert!(redis::cmd("PEXPIRE")
        .arg("s")
        .arg(60_000)
        .query::<bool>(&mut a)
        .unwrap());
    assert!((59..=60).contains(&b.ttl::<_, i64>("s").unwrap()));

    // Counters.
    assert_eq!(a.incr::<_, _, i64>("n", 1).unwrap(), 1);
    assert_eq!(redis::cmd("INCR").arg("n").query::<i64>(&mut b).unwrap(), 2);
    assert_eq!(
        redis::cmd("INCRBY")
            .arg("n")
            .arg(40)
            .query::<i64>(&mut a)
            .unwrap(),
        42
    );
    let _: () = a.set("word", "abc").unwrap();
    let err = redis::cmd("INCR")
        .arg("word")
        .query::<i64>(&mut a)
        .unwrap_err();
    assert!(err.to_string().contains("not an integer"), "{err}");

    // Hashes.
    assert_eq!(
        a.hset_multiple::<_, _, _, ()>("h", &[("f1", "a"), ("f2", "b")])
            .ok(),
        Some(())
    );
    assert_eq!(b.hget::<_, _, String>("h", "f1").unwrap(), "a");
    let vals: Vec<Option<String>> = redis::cmd("HMGET")
        .arg("h")
        .arg("f1")
        .arg("zz")
        .arg("f2")
        .query(&mut b)
        .unwrap();
    assert_eq!(vals, vec![Some("a".into()), None, Some("b".into())]);
    let all: std::collections::HashMap<String, String> = b.hgetall("h").unwrap();
    assert_eq!(all.len(), 2);
    assert!(b.hexists::<_, _, bool>("h", "f2").unwrap());
    assert_eq!(b.hlen::<_, i64>("h").unwrap(), 2);
    assert_eq!(a.hdel::<_, _, i64>("h", "f1").unwrap(), 1);
    assert_eq!(b.hlen::<_, i64>("h").unwrap(), 1);
    let err = a.get::<_, String>("h").unwrap_err();
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");

    // Multi-key commands across colonies.
    let _: () = a.set("m1", "x").unwrap();
    let _: () = a.set("m2", "y").unwrap();
    let got: Vec<Option<String>> = b.mget(&["m1", "nope", "m2"]).unwrap();
    assert_eq!(got, vec![Some("x".into()), None, Some("y".into())]);
    assert_eq!(
        redis::cmd("EXISTS")
            .arg("m1")
            .arg("m2")
            .arg("nope")
            .query::<i64>(&mut b)
            .unwrap(),
        2
    );
    assert_eq!(
        redis::cmd("DEL")
            .arg("m1")
            .arg("m2")
            .arg("nope")
            .query::<i64>(&mut b)
            .unwrap(),
        2
    );
    assert_eq!(a.exists::<_, i64>("m1").unwrap(), 0);

    // Pipelining: 1,000 commands in one round trip, answered in order.
    let mut pipe = redis::pipe();
    for i in 0..500 {
        pipe.set(format!("pipe:{i}"), i).ignore();
        pipe.get(format!("pipe:{i}"));
    }
    let got: Vec<i64> = pipe.query(&mut b).unwrap();
    assert_eq!(got, (0..500).collect::<Vec<i64>>());

    // COLONY says where a key lives; INFO answers.
    let loc: Vec<redis::Value> = redis::cmd("COLONY").arg("s").query(&mut a).unwrap();
    assert!(loc.len() >= 6, "{loc:?}");
    let info: String = redis::cmd("INFO").query(&mut a).unwrap();
    assert!(
        info.contains("redis_version") && info.contains("colonies:16"),
        "{info}"
    );
}
