//! One module per subcommand; each builds on `Agent` and the frames, never on another command.

pub mod agent;
pub mod bursts;
pub mod doctor;
pub mod record;
pub mod report;
pub mod watch;
