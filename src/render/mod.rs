//! Rendering a job's message for one recipient: the templates ([`template`]: minijinja over
//! the recipient's variables, building Zoom's card), and the child process that renders them
//! with its memory and time capped ([`sandbox`]), so a job file cannot exhaust the machine.
//! Depends only on the shared vocabulary ([`crate::card`], [`crate::output`]).

pub mod error;
pub mod sandbox;
pub mod template;

pub use error::RenderError;
pub use template::{
    ALERT_VARIABLES, BUILTIN_VARIABLES, Block, Message, MessageTemplate, Text, worker,
};
