//! The shell: everything that does I/O. The event loop owns the core and every socket; the
//! workers do the disk work and long computations the core asks for; start-up reads the flags'
//! files and the data directory. Nothing here decides what the store does: that is the core's.

pub mod buffer;
pub mod connection;
pub mod data_dir;
pub mod event_loop;
pub mod logger;
pub mod peers;
pub mod server;
pub mod sys;
pub mod system_clock;
#[cfg_attr(not(feature = "tls"), path = "tls_off.rs")]
pub mod tls;
pub mod tokens;
pub mod transport;
pub mod workers;
