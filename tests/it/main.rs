//! classproof's integration tests: one binary, one module per room, each against real parts
//! started on loopback by the tests themselves (see `support`).

mod attendance;
mod commands;
mod compliance;
mod config;
mod evidence;
mod faults;
mod presence;
mod recording;
mod status;
mod support;
mod sync;
mod test_camera;
mod vision;
