//! Bad input never takes a node down: a peer with the wrong secret, garbage and
//! oversized frames on the peer port, malformed RESP on the client port. Each is
//! refused and the node keeps serving.

mod common;

use common::*;
use redis::Commands;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn still_serves(node: &NodeProc) {
    let mut conn = node.redis();
    let _: () = conn.set("alive", "yes").expect("SET after bad input");
    let v: String = conn.get("alive").expect("GET after bad input");
    assert_eq!(v, "yes");
}

/// Reads until the peer closes (or 5 s pass); what it sent.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return out,
        }
    }
}

#[test]
fn peer_port_refuses_wrong_secret_garbage_and_oversized_frames() {
    let mut c = Cluster::new("badpeer", 16, 2);
    c.start(1, "a", &[]);
    c.start(2, "b", &[]);
    c.wait_settled(2, Duration::from_secs(60));
    let target = c.nodes[&1].peer.clone();

    // Garbage: a length prefix followed by bytes that are not msgpack of a frame.
    let mut s = TcpStream::connect(&target).unwrap();
    s.write_all(&[0, 0, 0, 8, 0xc1, 0xc1, 0xc1, 0xc1, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
    read_until_closed(&mut s);
    // Oversized: a 4 GiB length prefix; refused before any body is read.
    let mut s = TcpStream::connect(&target).unwrap();
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).unwrap();
    read_until_closed(&mut s);
    // Not even a frame: HTTP on the peer port.
    let mut s = TcpStream::connect(&target).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    read_until_closed(&mut s);

    // A real node with the wrong secret cannot join.
    c.secret = "not-the-secret".into();
    c.start(3, "c", &[]);
    std::thread::sleep(Duration::from_secs(3));
    let s1 = c.nodes[&1].status().unwrap();
    assert!(
        s1.members.iter().all(|m| m.id != 3),
        "a node with the wrong secret became a member"
    );
    let log3 = c.nodes[&3].log_text();
    assert!(
        log3.contains("secret") || log3.contains("refused"),
        "the intruder is told why:\n{log3}"
    );
    let log1 = c.nodes[&1].log_text();
    assert!(
        log1.contains("refused a peer connection"),
        "node 1 logs the refusals:\n{log1}"
    );
    let metrics = ureq::get(&format!("http://{}/metrics", c.nodes[&1].admin))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let refused: u64 = metrics
        .lines()
        .find(|l| l.starts_with("colony_handshakes_refused_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        refused >= 4,
        "garbage, oversized, http and wrong secret are counted: {refused}"
    );

    still_serves(&c.nodes[&1]);
    c.nodes.get_mut(&3).unwrap().kill();
    c.nodes.remove(&3);
    c.wait_settled(2, Duration::from_secs(30));
}

#[test]
fn client_port_answers_malformed_resp_with_an_error_and_keeps_serving() {
    let mut c = Cluster::new("badresp", 8, 1);
    c.start(1, "a", &[]);
    c.wait_settled(1, Duration::from_secs(30));
    let addr = c.nodes[&1].client.clone();
    for bad in [
        &b"*2\r\n$3\r\nGET\r\n$-5\r\n"[..],
        b"*x\r\n",
        b"*1\r\nfoo\r\n",
        b"*1\r\n$99999999999\r\n",
    ] {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(bad).unwrap();
        let got = read_until_closed(&mut s);
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("-ERR Protocol error"),
            "{bad:?} -> {text:?}"
        );
    }
    // Unknown commands and wrong arity: errors, and the connection stays usable.
    let mut conn = c.nodes[&1].redis();
    let err = redis::cmd("NOSUCHCMD")
        .arg("x")
        .query::<String>(&mut conn)
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("unknown command"),
        "{err}"
    );
    let err = redis::cmd("GET").query::<String>(&mut conn).unwrap_err();
    assert!(
        err.to_string().contains("wrong number of arguments"),
        "{err}"
    );
    still_serves(&c.nodes[&1]);
}
