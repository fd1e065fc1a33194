//! The shell: everything that does I/O.

pub mod buffer;
pub mod clock;
pub mod connection;
pub mod data_dir;
pub mod event_loop;
pub mod logger;
pub mod peers;
pub mod server;
pub mod sys;
pub mod workers;
