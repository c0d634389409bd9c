//! The admin HTTP server (actix-web), bound to loopback by default:
//!
//! - `GET /status`: members with their state, the directory (primary and secondaries of
//!   every colony), this node's replicas and the migrations in flight, as JSON
//!   ([`report::StatusReport`]).
//! - `GET /events`: the event stream as Server-Sent Events with ids; a client that
//!   reconnects with `Last-Event-ID` gets what it missed (`?from=start` replays what
//!   the node still keeps).
//! - `GET /metrics`: Prometheus text.
//! - `POST /leave`: leave gracefully, as SIGTERM does.
//! - `GET /debug/colony/{id}`: the full state of a local replica (debug format).
//! - `GET /backup/local`: a consistent snapshot of every primary held here, in the
//!   backup file format (`colony backup` collects these from every node).
//! - `POST /restore`: a body in the dump/backup format; its cells are restored through
//!   this node (`colony restore` sends a backup in such batches), answered with counts.
//! - `POST /restore/report?colonies=C&cells=N&skipped=S`: announce a finished restore
//!   (`restore_done` on the event stream).

pub mod info;
pub mod metrics;
pub mod report;

use crate::actors::event_bus::{EventBus, Stamped, Subscribe};
use crate::actors::host::{
    DebugColony, GetCounters, GetStatus, HostActor, Leave, Report, SnapshotPrimaries,
};
use crate::actors::restore::RestoreActor;
use crate::core::events::EventKind;
use crate::store;
use actix::Addr;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Duration;

/// Largest body `POST /restore` takes (the CLI sends much smaller batches).
const MAX_RESTORE_BODY: usize = 256 << 20;

/// How often an idle event stream sends a comment so proxies keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);

#[derive(Clone)]
struct AdminState {
    host: Addr<HostActor>,
    bus: Addr<EventBus>,
}

/// Binds the admin server; the caller spawns the returned server.
pub fn server(
    addr: SocketAddr,
    host: Addr<HostActor>,
    bus: Addr<EventBus>,
) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::new(AdminState { host, bus });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/", web::get().to(index))
            .route("/status", web::get().to(status))
            .route("/events", web::get().to(events))
            .route("/metrics", web::get().to(metrics))
            .route("/leave", web::post().to(leave))
            .route("/debug/colony/{id}", web::get().to(debug_colony))
            .route("/backup/local", web::get().to(backup_local))
            .route("/restore", web::post().to(restore))
            .route("/restore/report", web::post().to(restore_report))
            .app_data(web::PayloadConfig::new(MAX_RESTORE_BODY))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?
    .run())
}

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain")
        .body("colony admin: GET /status, GET /events (SSE), GET /metrics, POST /leave\n")
}

fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable().body("node is shutting down\n")
}

async fn status(st: web::Data<AdminState>) -> HttpResponse {
    match st.host.send(GetStatus).await {
        Ok(r) => HttpResponse::Ok().json(r.0),
        Err(_) => unavailable(),
    }
}

async fn metrics(st: web::Data<AdminState>) -> HttpResponse {
    let (Ok(s), Ok(c)) = (
        st.host.send(GetStatus).await,
        st.host.send(GetCounters).await,
    ) else {
        return unavailable();
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics::render(&s.0, &c.0))
}

async fn debug_colony(path: web::Path<u32>, st: web::Data<AdminState>) -> HttpResponse {
    match st.host.send(DebugColony(path.into_inner())).await {
        Ok(r) => match r.0 {
            Some(text) => HttpResponse::Ok().content_type("text/plain").body(text),
            None => HttpResponse::NotFound().body("no replica of that colony here\n"),
        },
        Err(_) => unavailable(),
    }
}

async fn backup_local(st: web::Data<AdminState>) -> HttpResponse {
    let Ok(snap) = st.host.send(SnapshotPrimaries).await else {
        return unavailable();
    };
    // Encoding a few hundred MB is real work: off the async thread.
    let encoded = web::block(move || -> Result<Vec<u8>, store::StoreError> {
        let mut w = store::DumpWriter::new(
            Vec::new(),
            store::FileKind::Backup,
            crate::actors::host::now_ms(),
        )?;
        for (header, cells) in &snap.0 {
            w.begin_colony(*header)?;
            w.cells(cells)?;
        }
        w.finish()
    })
    .await;
    match encoded {
        Ok(Ok(bytes)) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(bytes),
        Ok(Err(e)) => HttpResponse::InternalServerError().body(format!("{e}\n")),
        Err(_) => unavailable(),
    }
}

async fn restore(body: web::Bytes, st: web::Data<AdminState>) -> HttpResponse {
    let parsed = web::block(move || {
        let mut cells = Vec::new();
        let reader = std::io::Cursor::new(body);
        let mut dump = store::DumpReader::open(reader, "request body", store::ReadMode::Strict)?;
        for record in dump.by_ref() {
            if let store::DumpRecord::Cells { cells: c, .. } = record? {
                cells.extend(c);
            }
        }
        Ok::<_, store::StoreError>(cells)
    })
    .await;
    let cells = match parsed {
        Ok(Ok(cells)) => cells,
        Ok(Err(e)) => return HttpResponse::BadRequest().body(format!("{e}\n")),
        Err(_) => return unavailable(),
    };
    match RestoreActor::run(st.host.clone(), cells).await {
        Ok(counts) => HttpResponse::Ok().json(counts),
        Err(_) => unavailable(),
    }
}

async fn restore_report(
    q: web::Query<std::collections::HashMap<String, u64>>,
    st: web::Data<AdminState>,
) -> HttpResponse {
    let get = |k: &str| q.get(k).copied().unwrap_or(0);
    st.host.do_send(Report(EventKind::RestoreDone {
        colonies: get("colonies") as u32,
        cells: get("cells"),
        skipped: get("skipped"),
    }));
    HttpResponse::Accepted().finish()
}

async fn leave(st: web::Data<AdminState>) -> HttpResponse {
    st.host.do_send(Leave);
    HttpResponse::Accepted().body("leaving\n")
}

fn sse(s: &Stamped) -> Bytes {
    Bytes::from(format!("id: {}\ndata: {}\n\n", s.id, s.json))
}

async fn events(req: HttpRequest, st: web::Data<AdminState>) -> HttpResponse {
    let last_event_id = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let from_start = req.query_string().split('&').any(|kv| kv == "from=start");
    let Ok(sub) = st
        .bus
        .send(Subscribe {
            last_event_id,
            backlog: from_start,
        })
        .await
    else {
        return unavailable();
    };
    let backlog = futures_util::stream::iter(
        sub.backlog
            .into_iter()
            .map(|s| Ok::<_, actix_web::Error>(sse(&s))),
    );
    let live = futures_util::stream::unfold(sub.live, |mut rx| async move {
        match tokio::time::timeout(KEEPALIVE, rx.recv()).await {
            Ok(Some(s)) => Some((Ok(sse(&s)), rx)),
            Ok(None) => None,
            Err(_) => Some((Ok(Bytes::from_static(b": keepalive\n\n")), rx)),
        }
    });
    use futures_util::StreamExt;
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(backlog.chain(live))
}
