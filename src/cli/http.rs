//! Small blocking HTTP helpers for the admin API (ureq).

use anyhow::{Context, Result};
use colony::admin::report::StatusReport;
use std::time::Duration;

/// `http://ADDR` unless ADDR already has a scheme.
pub fn url(addr: &str, path: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        format!("{}{path}", addr.trim_end_matches('/'))
    } else {
        format!("http://{addr}{path}")
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(2))
        .timeout_read(Duration::from_secs(5))
        .build()
}

pub fn status(addr: &str) -> Result<StatusReport> {
    let body = agent()
        .get(&url(addr, "/status"))
        .call()
        .with_context(|| format!("cannot reach the admin port at {addr}"))?
        .into_string()?;
    serde_json::from_str(&body).with_context(|| format!("{addr} did not answer with a status"))
}

pub fn post(addr: &str, path: &str) -> Result<String> {
    Ok(agent()
        .post(&url(addr, path))
        .call()
        .with_context(|| format!("cannot reach the admin port at {addr}"))?
        .into_string()?)
}

/// A reader over a node's event stream (no read timeout: events may be rare).
pub fn events(addr: &str, from_start: bool) -> Result<Box<dyn std::io::Read + Send>> {
    let path = if from_start {
        "/events?from=start"
    } else {
        "/events"
    };
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(2))
        .build();
    Ok(agent
        .get(&url(addr, path))
        .call()
        .with_context(|| format!("cannot subscribe to events at {addr}"))?
        .into_reader())
}
