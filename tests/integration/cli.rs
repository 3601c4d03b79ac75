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
    for section in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH FILES"] {
        man.stdout_has(section);
    }
    env.run(&["--version"])
        .code(0)
        .stdout_has(concat!("zoomcast ", env!("CARGO_PKG_VERSION")));
    env.run(&["completions", "tcsh"])
        .code(2)
        .stderr_has("invalid value 'tcsh'");
}

#[test]
fn man_dir_writes_a_page_per_subcommand_that_renders_cleanly() {
    let env = Env::new();
    let dir = env.dir.path().join("man");
    env.run(&["man", "--dir", dir.to_str().unwrap()])
        .code(0)
        .stdout_has("man pages");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for page in [
        "zoomcast.1",
        "zoomcast-run.1",
        "zoomcast-history.1",
        "zoomcast-auth-login.1",
    ] {
        assert!(
            names.iter().any(|n| n == page),
            "{page} missing from {names:?}"
        );
    }
    for name in &names {
        let roff = std::fs::read_to_string(dir.join(name)).unwrap();
        for section in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH FILES"] {
            assert!(roff.contains(section), "{name} lacks {section}");
        }
        assert!(!roff.contains('\x0c'), "{name} holds a form feed");
    }
    // Where man is installed, every page renders without a warning.
    let Ok(probe) = std::process::Command::new("man").arg("--version").output() else {
        return;
    };
    if !probe.status.success() {
        return;
    }
    for name in &names {
        let out = std::process::Command::new("man")
            .args(["-l", "--warnings=all"])
            .arg(dir.join(name))
            .env("MANWIDTH", "100")
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{name}: {stderr}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("EXIT STATUS"), "{name}: {text}");
    }
}

#[test]
fn secrets_come_from_files_and_config_references_from_the_environment() {
    let env = Env::new();
    env.login();
    env.job("team", &crate::harness::job_to(&["ana@example.com"]));
    let secret = env.emu().knobs().client_secret;
    let file = env.dir.path().join("client-secret");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    // The secret from a file (systemd's LoadCredential, a Kubernetes Secret volume): Zoom
    // takes it (the dry run asks for a new bot token with it).
    env.run_with(&["run", "team", "--dry-run"], |cmd| {
        cmd.env_remove("ZOOM_CLIENT_SECRET")
            .env("ZOOM_CLIENT_SECRET_FILE", &file);
    })
    .code(0)
    .stdout_has("the bot token was obtained");
    // Both ways at once: refused, naming both.
    let both = env.run_with(&["run", "team", "--dry-run"], |cmd| {
        cmd.env("ZOOM_CLIENT_SECRET_FILE", &file);
    });
    both.code(2)
        .stderr_has("both ZOOM_CLIENT_SECRET and ZOOM_CLIENT_SECRET_FILE are set");
    assert!(!both.stderr.contains(&secret));
    // A `${VAR}` reference in zoomcast.toml.
    let config = env.dir.path().join("zoomcast.toml");
    std::fs::write(&config, "client_secret = \"${TEAM_SECRET}\"\n").unwrap();
    let config = config.to_str().unwrap();
    env.run_with(&["--config", config, "run", "team", "--dry-run"], |cmd| {
        cmd.env_remove("ZOOM_CLIENT_SECRET")
            .env("TEAM_SECRET", &secret);
    })
    .code(0);
    env.run_with(&["--config", config, "run", "team", "--dry-run"], |cmd| {
        cmd.env_remove("ZOOM_CLIENT_SECRET");
    })
    .code(2)
    .stderr_has("client_secret refers to ${TEAM_SECRET}, which is not set in the environment");
}

#[test]
fn doctor_passes_when_everything_is_ready_and_names_what_is_not() {
    let env = Env::new();
    // Not authorized yet: that check fails, with the fix.
    env.run(&["doctor"])
        .code(1)
        .stdout_has("ok   app `default` configuration")
        .stdout_has("FAIL app `default` grant: not authorized")
        .stdout_has("fix: run `zoomcast auth login --app default`")
        .stderr_has("1 of ");
    env.login();
    let ready = env.run(&["doctor"]);
    ready
        .code(0)
        .stdout_has("ok   state directory")
        .stdout_has("ok   app `default` grant of account emulated-account-1")
        .stdout_has("reaches Zoom's API")
        .stdout_has("ok   app `default` clock against Zoom's");
    assert!(!ready.stdout.contains("FAIL"), "{}", ready.stdout);
    // Zoom out of reach, and a chatbot JID that is not one.
    let broken = env.run_with(&["doctor", "--json"], |cmd| {
        cmd.env("ZOOM_API_URL", "http://127.0.0.1:9")
            .env("ZOOM_ROBOT_JID", "my-bot");
    });
    broken.code(1);
    let checks = broken.json();
    let failed: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    // With Zoom out of reach, the grant could not be checked with Zoom either.
    assert_eq!(failed.len(), 3, "{checks}");
    assert!(
        failed[0].contains("configuration")
            && failed[1].contains("with Zoom")
            && failed[2].contains("API"),
        "{failed:?}"
    );
}

#[test]
fn a_mistyped_job_name_gets_the_closest_one_and_exit_2() {
    let env = Env::new();
    env.login();
    env.job("oncall", &crate::harness::job_to(&["ana@example.com"]));
    env.run(&["run", "oncal"])
        .code(2)
        .stderr_has("there is no job `oncal` in")
        .stderr_has("(did you mean `oncall`?)");
    env.run(&["history", "oncal"])
        .code(2)
        .stderr_has("did you mean `oncall`?");
    env.run(&["recall", "zzz"])
        .code(2)
        .stderr_has("the jobs are: oncall");
    // `oncall.toml` means the jobs directory's file when there is none here.
    env.run(&["run", "oncall.toml"]).code(0);
    env.run(&["history", "oncall"]).code(0);
}

#[test]
fn the_emulators_help_names_the_credentials_it_accepts() {
    let env = Env::new();
    let help = env.run(&["emulator", "--help"]);
    help.code(0);
    let knobs = zoomcast::emulator::Knobs::default();
    for value in [
        knobs.client_id,
        knobs.client_secret,
        knobs.robot_jid,
        knobs.webhook_secret,
        knobs.account_id,
        knobs.second_account_id,
    ] {
        assert!(help.stdout.contains(&value), "--help lacks {value}");
    }
}

#[test]
fn every_final_error_starts_with_error() {
    let env = Env::new();
    env.job("broken", "schedule = 5\n");
    for args in [
        &["run", "nope"][..],
        &["jobs"],
        &["history", "--state", "nowhere"],
        &["validate", "broken"],
        &["run", "--dry-run"],
        &["auth", "logout", "--app", "nope"],
    ] {
        let run = env.run(args);
        assert!(run.code == 1 || run.code == 2, "{args:?}: {}", run.code);
        assert!(
            run.stderr.starts_with("error: "),
            "{args:?}:\n{}",
            run.stderr
        );
    }
}

#[test]
fn the_configuration_is_found_under_xdg_config_home_and_doctor_names_it_and_warns_of_plain_tokens()
{
    let env = Env::new();
    env.login();
    let doctor = env.run(&["doctor"]);
    doctor
        .code(0)
        .stdout_has("configuration file: none found (looked for zoomcast.toml")
        .stdout_has("/etc/zoomcast/zoomcast.toml): the environment only")
        .stdout_has("warn tokens at rest: stored in plain form")
        .stdout_has("zoomcast state new-key");
    let dir = env.dir.path().join("xdg/zoomcast");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("zoomcast.toml"),
        "[apps.second]\nclient_id = \"x\"\nclient_secret = \"y\"\n",
    )
    .unwrap();
    env.run(&["doctor", "--app", "default"])
        .code(0)
        .stdout_has(&format!(
            "configuration file: read {}",
            dir.join("zoomcast.toml").display()
        ));
    // The file is the configuration: its app exists (with no grant yet), another does not.
    let second = env.run(&["auth", "status", "--app", "second"]);
    assert!(
        !second.stderr.contains("no app called"),
        "{}",
        second.stderr
    );
    env.run(&["auth", "status", "--app", "third"])
        .code(1)
        .stderr_has("no app called `third`");
}
