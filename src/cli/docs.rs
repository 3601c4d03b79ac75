//! `completions SHELL` and `man [--dir DIR]`: shell completions (`clap_complete`) and the man
//! pages (`clap_mangen`, with EXIT STATUS, ENVIRONMENT and FILES added), generated from the same definitions as the command line itself, so they
//! cannot drift from it.

use anyhow::Context as _;
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

#[derive(Debug, clap::Args)]
pub(super) struct ManArgs {
    /// Write zoomcast.1 and one page per subcommand (zoomcast-run.1, zoomcast-auth-login.1,
    /// ...) into DIR instead of printing zoomcast.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
}

/// Prints `zoomcast.1` (roff), or writes every page into `--dir`.
pub(super) fn man(args: &ManArgs) -> anyhow::Result<Outcome> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let Some(dir) = &args.dir else {
        out!("{}", String::from_utf8_lossy(&page(&command)?));
        return Ok(Outcome::Done);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = 0;
    for command in pages(&command) {
        let name = format!("{}.1", page_name(command));
        let path = dir.join(&name);
        std::fs::write(&path, page(command)?)
            .with_context(|| format!("writing {}", path.display()))?;
        written += 1;
    }
    outln!("wrote {written} man pages to {}", dir.display());
    Ok(Outcome::Done)
}

/// `command` and every visible subcommand under it, depth first.
fn pages(command: &clap::Command) -> Vec<&clap::Command> {
    let mut all = vec![command];
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        all.extend(pages(sub));
    }
    all
}

/// A page's name: `zoomcast`, `zoomcast-run`, `zoomcast-auth-login` (clap names a built
/// subcommand's display name so).
fn page_name(command: &clap::Command) -> String {
    command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_owned()
}

/// One man page: `clap_mangen`'s sections, then EXIT STATUS, ENVIRONMENT and FILES.
fn page(command: &clap::Command) -> anyhow::Result<Vec<u8>> {
    let mut roff = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(page_name(command))
        .manual("zoomcast manual")
        .source(concat!("zoomcast ", env!("CARGO_PKG_VERSION")))
        .render(&mut roff)?;
    roff.extend_from_slice(COMMON_SECTIONS.as_bytes());
    Ok(roff)
}

/// What every page ends with (design section 2 and 3: the exit codes and the environment are
/// contracts).
const COMMON_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
every recipient delivered (with \fB\-\-dry\-run\fR, everything valid); any other command succeeded
.TP
\fB1\fR
the command could not proceed: authorization missing or revoked, Zoom unreachable after retries, the state locked past \fB\-\-wait\fR
.TP
\fB2\fR
invalid configuration, job file or arguments; nothing was sent
.TP
\fB3\fR
the run finished but some recipients failed permanently; they are listed in the report
.SH ENVIRONMENT
.TP
\fBZOOM_CLIENT_ID\fR, \fBZOOM_CLIENT_SECRET\fR (or \fBZOOM_CLIENT_SECRET_FILE\fR)
the default app's OAuth client
.TP
\fBZOOM_ACCOUNT_ID\fR
the app's home account (default: the first account that authorizes it)
.TP
\fBZOOM_ROBOT_JID\fR
the bot's JID, needed to send
.TP
\fBZOOM_REDIRECT_URI\fR, \fBZOOM_OAUTH_URL\fR, \fBZOOM_API_URL\fR
the OAuth redirect and Zoom's endpoints (the emulator stands in for Zoom through the last two)
.TP
\fBZOOM_WEBHOOK_SECRET\fR (or \fBZOOM_WEBHOOK_SECRET_FILE\fR)
the webhook secret token \fBserve\fR verifies Zoom's events with
.TP
\fBZOOM_PLAN\fR
the account's plan (free, pro, business): the limiters start at its documented limits
.TP
\fBZOOMCAST_CONFIG\fR, \fBZOOMCAST_STATE\fR, \fBZOOMCAST_JOBS\fR
what \fB\-\-config\fR, \fB\-\-state\fR and \fB\-\-jobs\fR set
.TP
\fBZOOMCAST_STATE_KEY\fR (or \fBZOOMCAST_STATE_KEY_FILE\fR), \fBZOOMCAST_NEW_STATE_KEY\fR
the key grants are encrypted with in the state directory, and the one to rekey to
.TP
\fBZOOMCAST_LOG_FORMAT\fR, \fBRUST_LOG\fR
log lines as text or JSON, and how much is logged
.SH FILES
.TP
\fIzoomcast.toml\fR
the apps' configuration (\fB\-\-config\fR)
.TP
\fIjobs/*.toml\fR
one job per file, named by its stem (\fB\-\-jobs\fR)
.TP
\fIstate/\fR
the state directory (\fB\-\-state\fR, mode 0700): \fIdb/\fR (sled), \fIgrants/APP/ACCOUNT.json\fR, \fIlock\fR, \fIcontrol.sock\fR
.SH "SEE ALSO"
\fBzoomcast\fR(1), \fBzoomcast man \-\-dir DIR\fR for one page per subcommand
"#;
