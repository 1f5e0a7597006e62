//! lanrelay: a self-hosted WebRTC relay (SFU) for local networks.
//!
//! Browsers load the web app over HTTPS, join a room over a WebSocket, and send their
//! audio and video to this server, which terminates ICE, DTLS and SRTP with str0m and
//! forwards each RTP packet to the other participants. Calls therefore work wherever
//! each device can reach the server, even where devices cannot reach each other.
//!
//! The map (`docs/architecture.md` has the threads and the path of a datagram):
//! - [`server`]: start-up ([`start`], [`run`]) and the `certs` subcommand;
//!   [`config`]: the flags.
//! - [`sfu`]: the packet plane. [`sfu::engine`] starts the media workers and the
//!   receive task; each worker drives a [`sfu::shard::Shard`], the Sans-IO core that
//!   owns its rooms' peers and their `Rtc`s.
//! - [`signaling`]: the wire protocol ([`signaling::protocol`]) and one WebSocket's
//!   session; [`room`]: who is in which room; [`chat`]: a room's text chat (limits,
//!   history); [`record`]: a room's tracks written to WebM files (the recorder in
//!   the room's shard, the writer thread, `/recordings`).
//! - `http`: the router (web app, `/ws`, `/healthz`, `/api/rooms`, `/metrics`), with
//!   `whip` (WHIP/WHEP), `trust` (the CA downloads and install page), `metrics`, `api`
//!   (who may see which rooms and addresses), and
//!   `state` (what handlers share); `helper`: the plain-HTTP port; `token`: how
//!   secrets are compared.
//! - [`certs`]: lanrelay's own CA and the server certificate it issues (or
//!   `--cert/--key`), reloaded when the files change; [`net`]: the machine's LAN
//!   addresses; `banner` and [`qr`]: the URLs printed with QR codes.

// clippy.toml keeps the clock and the thread RNG out of the media core; the modules of
// the core turn the rule on, the shells around them read the clock as they must.
#![allow(clippy::disallowed_methods)]

mod api;
mod banner;
pub mod certs;
pub mod chat;
pub mod cluster;
pub mod config;
mod conns;
mod helper;
mod http;
mod https_port;
mod metrics;
pub mod net;
pub mod qr;
mod rate;
pub mod record;
pub(crate) mod room;
pub mod server;
pub mod sfu;
pub mod signaling;
mod state;
mod token;
mod trust;
mod whip;

pub use config::Config;
pub use server::{certs_command, run, start, Server};
