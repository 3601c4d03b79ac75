//! `completions SHELL` and `man`: shell completions (`clap_complete`) and the man page
//! (`clap_mangen`), generated from the same definitions as the command line itself, so they
//! cannot drift from it.

use clap::CommandFactory;

use super::{Cli, Outcome};

#[derive(Debug, clap::Args)]
pub(super) struct CompletionsArgs {
    /// The shell: bash, elvish, fish, powershell or zsh.
    shell: clap_complete::Shell,
}

/// Prints the completion script for a shell.
pub(super) fn completions(args: &CompletionsArgs) -> Outcome {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "zoomcast", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Outcome::Done
}

/// Prints the man page (roff), e.g. `zoomcast man > zoomcast.1`.
pub(super) fn man() -> anyhow::Result<Outcome> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    out!("{}", String::from_utf8_lossy(&page));
    Ok(Outcome::Done)
}
