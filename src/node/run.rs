//! Starts one node: binds the peer, client and admin ports (failing early and clearly
//! when one is taken), starts the event bus and the host actor, accepts connections,
//! and turns SIGTERM/SIGINT into a graceful leave. Returns when the node has left.

use super::config::{ConfigError, Settings, HANDSHAKE_TIMEOUT};
use crate::actors::event_bus::EventBus;
use crate::actors::host::{HostActor, HostSetup, IncomingPeer, Leave};
use crate::actors::session::SessionActor;
use crate::core::node::Node;
use crate::core::types::HostRole;
use crate::node::log_writer::LogWriter;
use crate::store::values::FileValueStorage;
use crate::wire::{Hello, Local, PROTOCOL_VERSION};
use actix::prelude::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

/// Why a node could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("runtime error: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("cannot open the data directory: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// A new incarnation for every start: tenths of a second since 2024-01-01, so a host
/// restarted a moment after it died still comes back with a higher one (u32 lasts
/// until 2037; persisting it in the data directory is the longer-term answer).
pub fn incarnation_now() -> u32 {
    const ORIGIN_SECS: u64 = 1_704_067_200;
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64 / 100)
        .unwrap_or(0);
    t.saturating_sub(ORIGIN_SECS * 10).min(u64::from(u32::MAX)) as u32
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind { what, addr, source })
}

/// Runs a node until it has left the cluster (or was stopped).
pub fn run(settings: Settings) -> Result<(), NodeError> {
    let system = System::new();
    system.block_on(start(settings))?;
    system.run()?;
    Ok(())
}

async fn start(s: Settings) -> Result<(), NodeError> {
    let peers = bind("peers", s.listen).await?;
    // Logging and storage nodes serve no clients: they open no client port.
    let clients = match s.info.role {
        HostRole::Normal => Some(bind("clients", s.client).await?),
        HostRole::Logger | HostRole::Storage => None,
    };
    let incarnation = incarnation_now();
    if s.dev_secret {
        tracing::warn!(
            "no cluster secret configured (--secret-file or ${}): using the built-in development secret",
            super::config::SECRET_ENV
        );
    }
    let id = s.info.id;
    let local = Arc::new(Local {
        hello: Hello {
            version: PROTOCOL_VERSION,
            cluster: s.cluster.clone(),
            colonies: s.core.colonies,
            host: id,
            incarnation,
            addrs: s.addrs.clone(),
            nonce: [0; 32],
        },
        secret: s.secret.clone(),
        max_frame: s.max_frame,
        timeout: HANDSHAKE_TIMEOUT,
    });
    let seed = rand::random::<u64>();
    let mut node = Node::new(s.info.clone(), s.core.clone(), incarnation, seed);
    let log = match &s.logger {
        Some(l) => {
            let (writer, positions) = LogWriter::start(
                &l.dir,
                l.segment_bytes,
                l.buffer_bytes,
                crate::actors::host::now_ms(),
            )?;
            tracing::info!(
                dir = %l.dir.display(),
                colonies = positions.len(),
                segment = writer.stats().segment,
                "log opened"
            );
            node.set_log_positions(positions);
            Some(writer)
        }
        None => None,
    };
    if let Some(dir) = &s.values_dir {
        let (storage, removed) = FileValueStorage::open_dir(dir)?;
        tracing::info!(
            dir = %dir.display(),
            removed,
            "storage node: replicas keep their cells in value logs here"
        );
        node.set_value_storage(Box::new(storage));
    }
    let bus = EventBus::new(incarnation).start();
    let host = HostActor::new(HostSetup {
        node,
        cluster: s.cluster.clone(),
        addrs: s.addrs.clone(),
        local,
        seeds: s.join.clone(),
        bus: bus.clone(),
        data_dir: s.data_dir.clone(),
        log,
    })
    .start();
    let admin =
        crate::admin::server(s.admin, host.clone(), bus).map_err(|source| NodeError::Bind {
            what: "admin HTTP",
            addr: s.admin,
            source,
        })?;
    actix::spawn(async move {
        if let Err(e) = admin.await {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    let h = host.clone();
    actix::spawn(async move {
        loop {
            match peers.accept().await {
                Ok((stream, from)) => h.do_send(IncomingPeer(stream, from)),
                Err(e) => {
                    tracing::warn!(error = %e, "peer accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    let h = host.clone();
    let (restore_dirs, salvage) = (s.restore_dirs.clone(), s.salvage);
    actix::spawn(async move {
        let Some(clients) = clients else {
            return;
        };
        // Saved cells go back in before any client is served.
        super::restore::restore_at_start(&h, &restore_dirs, salvage).await;
        tracing::info!("accepting clients");
        loop {
            match clients.accept().await {
                Ok((stream, from)) => {
                    SessionActor::start(stream, from, h.clone());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "client accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    let h = host.clone();
    actix::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        let mut asked = 0;
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            asked += 1;
            if asked == 1 {
                tracing::info!(
                    "signal received: leaving gracefully (signal again to exit at once)"
                );
                h.do_send(Leave);
            } else {
                tracing::warn!("second signal: exiting without finishing the leave");
                std::process::exit(130);
            }
        }
    });
    tracing::info!(
        host = id,
        incarnation,
        peers = %s.listen,
        clients = %s.client,
        admin = %s.admin,
        cluster = %s.cluster,
        colonies = s.core.colonies,
        replicas = s.core.colony.replicas,
        "node started"
    );
    Ok(())
}
