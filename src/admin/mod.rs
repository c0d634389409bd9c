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

pub mod info;
pub mod metrics;
pub mod report;

use crate::actors::event_bus::{EventBus, Stamped, Subscribe};
use crate::actors::host::{DebugColony, GetCounters, GetStatus, HostActor, Leave};
use actix::Addr;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Duration;

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

async fn leave(st: web::Data<AdminState>) -> HttpResponse {
    st.host.do_send(Leave(None));
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
