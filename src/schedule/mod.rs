//! Schedules: crontab expressions as users know them, evaluated in an IANA timezone, and the
//! scheduler daemon that fires them.

pub mod cron;
pub mod daemon;
pub mod plan;

pub use self::cron::Schedule;
