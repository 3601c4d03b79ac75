//! Installs from a browser: `/install`, Zoom's consent, the callback, once.

use super::*;

/// A browser that keeps redirects to itself.
pub(crate) fn browser() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// GETs `url` with `cookie` (if any): status, `Location`, body.
pub(crate) fn visit(url: &str, cookie: Option<&str>) -> (u16, String, String) {
    let mut request = browser().get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().unwrap();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        response.status().as_u16(),
        location,
        response.text().unwrap(),
    )
}

/// `serve` on a port known before it starts, with the app's redirect URI pointing at it.
pub(crate) fn serve_for_installs(env: &Env) -> Served {
    serve_for_installs_with(env, |_| {})
}

/// [`serve_for_installs`] with `tweak` applied to its command.
pub(crate) fn serve_for_installs_with(
    env: &Env,
    tweak: impl FnOnce(&mut std::process::Command),
) -> Served {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let callback = format!("http://127.0.0.1:{port}/oauth/callback");
    Served::start_on(env, &format!("127.0.0.1:{port}"), |cmd| {
        cmd.env("ZOOM_REDIRECT_URI", callback);
        tweak(cmd);
    })
}

/// Starts an install: the cookie `/install` set and the callback URL Zoom redirects to.
pub(crate) fn start_install(served: &Served) -> (String, String) {
    let response = browser().get(served.url("/install")).send().unwrap();
    assert_eq!(response.status(), 302);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let authorize = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.contains("code_challenge=") && authorize.contains("state="));
    (cookie, consent_redirect(&authorize))
}

#[test]
fn an_admin_installs_the_app_from_a_browser_once() {
    let env = Env::new();
    let served = serve_for_installs(&env);
    // `auth status` exits 1 while the app is not authorized, 0 once it is.
    let grant = |env: &Env| {
        let run = env.run(&["auth", "status", "--json"]);
        let rows = run.json();
        run.code(i32::from(rows[0]["authorized"] != true));
        rows[0].clone()
    };
    assert_eq!(grant(&env)["authorized"], false);

    // No cookie (another browser, or a forged link), or a state of another install: refused.
    let (cookie, callback) = start_install(&served);
    let (status, _, page) = visit(&callback, None);
    assert_eq!(status, 400, "{page}");
    let (other_cookie, _) = start_install(&served);
    assert_eq!(
        visit(&callback, Some(&other_cookie)).0,
        400,
        "the state of another install"
    );
    // A cookie past its ten minutes, even correctly signed.
    let knobs = env.emu().knobs();
    let state = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let expired = zoomcast::server::install::Pending {
        state,
        verifier: "v".repeat(43),
        expires: chrono::Utc::now().timestamp() - 1,
    };
    let name = zoomcast::server::install::cookie_name("default");
    let value = zoomcast::server::install::cookie_value(
        &zoomcast::token::ClientSecret::new(knobs.client_secret.clone()),
        "default",
        &expired,
    );
    assert_eq!(
        visit(&callback, Some(&format!("{name}={value}"))).0,
        400,
        "expired"
    );
    // The right cookie with the last hex digit of its MAC changed: the MAC no longer matches.
    let tampered = {
        let (rest, last) = cookie.split_at(cookie.len() - 1);
        format!("{rest}{}", if last == "0" { '1' } else { '0' })
    };
    assert_eq!(visit(&callback, Some(&tampered)).0, 400, "tampered");
    // Zoom's own refusal.
    let denied = format!("{}/oauth/callback?error=access_denied", served.base);
    assert_eq!(visit(&denied, Some(&cookie)).0, 400);
    assert_eq!(grant(&env)["authorized"], false, "nothing stored so far");

    // The real thing: the grant of the account is stored, and the browser goes to the bot.
    let (status, to, page) = visit(&callback, Some(&cookie));
    assert_eq!(status, 302, "{page}");
    assert!(
        to.starts_with("https://zoom.us/launch/chat?jid=robot_"),
        "{to}"
    );
    let installed = grant(&env);
    assert_eq!(installed["authorized"], true);
    assert_eq!(installed["account_id"], knobs.account_id);
    // The same code again (a reload, or a stolen redirect) is refused and changes nothing.
    let (status, _, page) = visit(&callback, Some(&cookie));
    assert_eq!(status, 400, "{page}");
    assert_eq!(grant(&env)["refreshed_at"], installed["refreshed_at"]);

    // An admin of a second account installs it too: each account has its own grant, and the
    // first one's is untouched.
    env.adjust_knobs(|k| k.login_as = "admin@second.example".into());
    let (cookie, callback) = start_install(&served);
    assert_eq!(visit(&callback, Some(&cookie)).0, 302);
    let rows = env.run(&["auth", "status", "--json"]).code(0).json();
    let accounts: Vec<_> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["account_id"])
        .collect();
    assert_eq!(
        accounts,
        ["emulated-account-1", "emulated-account-2"],
        "{rows}"
    );
    assert_eq!(rows[0]["refreshed_at"], installed["refreshed_at"]);

    // Zoom issues the tokens but `/v2/users/me` fails: the account is unknown, so nothing is
    // stored, and the tokens nothing will hold are revoked.
    env.adjust_knobs(|k| k.fail_5xx = 1.0);
    let (cookie, callback) = start_install(&served);
    let (status, _, page) = visit(&callback, Some(&cookie));
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("Nothing was stored"), "{page}");
    assert_eq!(env.emu().stats().revocations, 1);
    env.adjust_knobs(|k| k.fail_5xx = 0.0);
    let after = env.run(&["auth", "status", "--json"]).code(0).json();
    assert_eq!(after, rows);
    served.stop();
}
