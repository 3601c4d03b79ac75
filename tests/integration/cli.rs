//! The command line's own documentation: `--version`, shell completions and the man page,
//! generated from the same definitions as the parser.

use crate::harness::Env;

#[test]
fn completions_and_the_man_page_cover_every_command_and_need_no_configuration() {
    let env = Env::new();
    let bad_config = env.dir.path().join("broken.toml");
    std::fs::write(&bad_config, "client_id = [").unwrap();
    let config = bad_config.to_str().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = env.run(&["--config", config, "completions", shell]);
        run.code(0);
        for command in ["recall", "edit", "serve", "optouts", "completions"] {
            assert!(run.stdout.contains(command), "{shell} lacks {command}");
        }
    }
    let man = env.run(&["--config", config, "man"]);
    man.code(0)
        .stdout_has(".TH zoomcast 1")
        .stdout_has("recall");
    env.run(&["--version"])
        .code(0)
        .stdout_has(concat!("zoomcast ", env!("CARGO_PKG_VERSION")));
    env.run(&["completions", "tcsh"])
        .code(2)
        .stderr_has("invalid value 'tcsh'");
}
