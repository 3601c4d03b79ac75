//! Schedules: crontab expressions as users know them, evaluated in an IANA timezone.

pub mod cron;

pub use self::cron::Schedule;
