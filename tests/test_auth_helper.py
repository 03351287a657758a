"""`tap-strava-auth` end to end against the simulator, the test playing the browser.

The browser is a thread that fetches the authorize URL (no redirects followed), reads the
simulator's 302 and delivers it to the helper's callback port, exactly as a browser would.
Every failure the issue lists gets a test and must end in exactly one error line.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests

from strava_simulator import StravaSimulator
from tap_strava import authorize, callback_server
from tap_strava.token_store import TokenStore
from tests.conftest import tap_config_for
from tests.support import run_tap

TIMEOUT = 10
AUTH_SCRIPT = str(Path(sys.executable).with_name("tap-strava-auth"))


class Browser:
    """Plays the user's browser: consent page, then the redirect to the callback."""

    def __init__(self, tamper: t.Callable[[str], str] | None = None, act: bool = True) -> None:
        self.tamper = tamper
        self.act = act
        self.urls: list[str] = []
        self.callback_status: int | None = None
        self.callback_page = ""  # what the browser tab shows after the redirect
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def __call__(self, url: str) -> bool:
        self.urls.append(url)
        if self.act:
            thread = threading.Thread(target=self._visit, args=(url,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return True

    def _visit(self, url: str) -> None:
        try:
            consent = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
            assert consent.status_code == 302, consent.text
            location = consent.headers["Location"]
            if self.tamper is not None:
                location = self.tamper(location)
            page = requests.get(location, timeout=TIMEOUT)
            self.callback_status = page.status_code
            self.callback_page = page.text
        except BaseException as exc:  # reported by join()
            self.errors.append(exc)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(TIMEOUT)
        assert not self.errors, self.errors


@pytest.fixture
def auth_env(simulator: StravaSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings as a user's shell would have them; nothing of the real project leaks in."""
    for key in list(os.environ):
        if key.startswith(("TAP_STRAVA_", "MELTANO_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TAP_STRAVA_CLIENT_ID", simulator.client_id)
    monkeypatch.setenv("TAP_STRAVA_CLIENT_SECRET", simulator.client_secret)
    monkeypatch.setenv("TAP_STRAVA_TOKEN_URL", simulator.token_url)
    monkeypatch.setenv("TAP_STRAVA_TOKEN_STORE_PATH", str(tmp_path / "store" / "tokens.json"))
    monkeypatch.setenv("BROWSER", "test-browser")  # "there is a browser"
    monkeypatch.chdir(tmp_path)  # .env lands in tmp_path; no meltano.yml here
    return tmp_path


def run_helper(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    browser: Browser,
    *args: str,
) -> tuple[int, str, str]:
    """Run `tap-strava-auth` in-process with the fake browser; (exit code, out, err)."""
    monkeypatch.setattr(authorize.webbrowser, "open", browser)
    code = 0
    try:
        authorize.main(["--port", "0", "--timeout", "10", "--no-meltano", *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    browser.join()
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tap-strava-auth: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], err


def assert_nothing_written(home: Path) -> None:
    assert not (home / ".env").exists()
    assert not (home / "store" / "tokens.json").exists()


def test_authorizes_and_the_pipeline_runs_without_copying_anything(
    simulator, auth_env, monkeypatch, capsys
):
    env_file = auth_env / ".env"
    env_file.write_text(
        "# my settings\nTAP_STRAVA_REFRESH_TOKEN=stale-one\nTARGET_POSTGRES_PASSWORD=p w\n"
        "export TAP_STRAVA_START_DATE=2020-01-01T00:00:00Z\n"
    )
    env_file.chmod(0o644)
    old_token = simulator.refresh_token
    browser = Browser()

    code, out, err = run_helper(monkeypatch, capsys, browser)

    assert code == 0, err
    assert err == ""
    assert browser.callback_status == 200
    assert "<h1>Authorized</h1>" in browser.callback_page
    new_token = simulator.refresh_token
    assert new_token != old_token  # a new authorization: a new chain
    # .env: updated in place, other lines kept, 0600; client id/secret already in env.
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert env_file.read_text().splitlines() == [
        "# my settings",
        f"TAP_STRAVA_REFRESH_TOKEN={new_token}",
        "TARGET_POSTGRES_PASSWORD=p w",
        "export TAP_STRAVA_START_DATE=2020-01-01T00:00:00Z",
    ]
    # The URL asked for the pipeline's scopes, and the granted ones are reported.
    asked = parse_qs(urlsplit(browser.urls[0]).query)
    assert asked["scope"] == ["read,activity:read_all,profile:read_all"]
    assert asked["redirect_uri"][0].startswith("http://127.0.0.1:")
    assert "Strava granted: activity:read_all,profile:read_all,read" in out
    assert f"Authorized athlete {simulator.athlete_id}" in out
    # The token store holds the new chain, keyed the way the tap looks it up.
    store_path = auth_env / "store" / "tokens.json"
    stored = TokenStore(
        store_path, client_id=simulator.client_id, configured_refresh_token=new_token
    ).load()
    assert stored is not None
    assert stored.refresh_token == new_token
    assert stored.athlete_id == simulator.athlete_id
    assert stored.access_token
    # No token value, nor the code, ever reaches the terminal.
    code_value = parse_qs(urlsplit(browser.urls[0]).query).get("code")
    for secret in (new_token, stored.access_token, simulator.client_secret, code_value):
        assert not secret or str(secret) not in out + err

    # The pipeline now runs on what the helper wrote, reusing the seeded access token.
    simulator.clear_requests()
    config = tap_config_for(
        simulator, auth_env, refresh_token=new_token, token_store_path=str(store_path)
    )
    result = run_tap(config, streams=["athlete"])
    assert result.records("athlete")[0]["athlete_id"] == simulator.athlete_id
    assert not [r for r in simulator.requests if r.path.startswith("/oauth/")]


def test_prompted_credentials_are_written_to_env(simulator, auth_env, monkeypatch, capsys):
    monkeypatch.delenv("TAP_STRAVA_CLIENT_ID")
    monkeypatch.delenv("TAP_STRAVA_CLIENT_SECRET")
    monkeypatch.setattr(authorize.sys.stdin, "isatty", lambda: True, raising=False)
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda label: asked.append(label) or simulator.client_id)
    monkeypatch.setattr(
        authorize.getpass, "getpass", lambda label: asked.append(label) or simulator.client_secret
    )

    code, out, err = run_helper(monkeypatch, capsys, Browser())

    assert code == 0, err
    assert asked == ["Strava Client ID: ", "Strava Client Secret (not shown): "]
    values = authorize.read_env_file(auth_env / ".env")
    assert values == {
        "TAP_STRAVA_REFRESH_TOKEN": simulator.refresh_token,
        "TAP_STRAVA_CLIENT_ID": simulator.client_id,
        "TAP_STRAVA_CLIENT_SECRET": simulator.client_secret,
    }
    assert simulator.client_secret not in out + err


def test_settings_come_from_the_env_file_when_not_in_the_environment(
    simulator, auth_env, monkeypatch, capsys
):
    monkeypatch.delenv("TAP_STRAVA_CLIENT_SECRET")
    (auth_env / ".env").write_text(f"TAP_STRAVA_CLIENT_SECRET='{simulator.client_secret}'\n")
    code, _, err = run_helper(monkeypatch, capsys, Browser())
    assert code == 0, err
    assert authorize.read_env_file(auth_env / ".env") == {
        "TAP_STRAVA_CLIENT_SECRET": simulator.client_secret,
        "TAP_STRAVA_REFRESH_TOKEN": simulator.refresh_token,
    }


def test_without_activity_read_all_it_warns_about_only_you_activities(
    simulator, auth_env, monkeypatch, capsys
):
    # The athlete unticks "private activities" on a page that offered both levels.
    simulator.set_authorization(scope="activity:read,profile:read_all")
    scope = "read,activity:read,activity:read_all,profile:read_all"
    code, out, err = run_helper(monkeypatch, capsys, Browser(), "--scope", scope)
    assert code == 0, err
    assert "Strava granted: activity:read,profile:read_all,read" in out
    assert '"Only You" (private) activities will be skipped' in err
    assert err.startswith("tap-strava-auth: warning: ")
    assert (auth_env / ".env").exists()


def test_without_any_activity_scope_it_refuses_and_writes_nothing(
    simulator, auth_env, monkeypatch, capsys
):
    simulator.set_authorization(scope="profile:read_all")
    code, out, err = run_helper(monkeypatch, capsys, Browser())
    assert code == 1
    assert "Strava granted: profile:read_all,read" in out
    assert_one_error_line(err, "without activity:read", "No token was written")
    assert_nothing_written(auth_env)
    # The code was not even exchanged: no tokens exist for this refusal.
    assert not [r for r in simulator.requests if r.path == "/oauth/token"]


def test_user_denies_access(simulator, auth_env, monkeypatch, capsys):
    simulator.set_authorization(approve=False)
    code, _, err = run_helper(monkeypatch, capsys, Browser())
    assert code == 1
    assert_one_error_line(err, "denied", "error=access_denied")
    assert_nothing_written(auth_env)


def test_wrong_client_secret(simulator, auth_env, monkeypatch, capsys):
    browser = Browser()
    code, _, err = run_helper(monkeypatch, capsys, browser, "--client-secret", "wrong")
    assert code == 1
    assert_one_error_line(err, "rejected the client id or secret", "HTTP 401")
    assert "wrong" not in err
    assert_nothing_written(auth_env)
    # Issue 13.5: the tab said "Authorization received" although the exchange failed.
    assert "<h1>Authorization failed</h1>" in browser.callback_page
    assert "rejected the client id or secret" in browser.callback_page
    assert "received" not in browser.callback_page


def test_ctrl_d_at_the_prompt_is_one_line(simulator, tmp_path):
    """Issue 13.5: Ctrl-D at the Client ID prompt ended in an EOFError traceback."""
    import pty

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_STRAVA_", "MELTANO_"))}
    env.update(TAP_STRAVA_TOKEN_URL=simulator.token_url)
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [AUTH_SCRIPT, "--no-meltano", "--no-browser", "--env-file", str(tmp_path / "x.env")],
        cwd=tmp_path,
        env=env,
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(terminal)
    try:
        time.sleep(1.0)  # at the prompt
        os.write(controller, b"\x04")  # Ctrl-D
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        os.close(controller)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.strip()]
    assert line.startswith("tap-strava-auth: error: No client_id given"), err
    assert not (tmp_path / "x.env").exists()


def test_unknown_client_id(simulator, auth_env, monkeypatch, capsys):
    # The consent page itself refuses an unknown client: the browser never comes back.
    code, _, err = run_helper(
        monkeypatch, capsys, Browser(act=False), "--client-id", "999", "--timeout", "0.3"
    )
    assert code == 1
    assert_one_error_line(err, "No redirect from Strava within")
    assert_nothing_written(auth_env)


def test_callback_port_already_in_use(simulator, auth_env, monkeypatch, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        browser = Browser(act=False)
        code, _, err = run_helper(monkeypatch, capsys, browser, "--port", str(port))
    assert code == 1
    assert_one_error_line(err, f"Port {port} on 127.0.0.1 is already in use", "--port")
    assert browser.urls == []  # nobody was sent to Strava
    assert_nothing_written(auth_env)


def test_timeout_waiting_for_the_redirect(simulator, auth_env, monkeypatch, capsys):
    started = time.monotonic()
    code, out, err = run_helper(monkeypatch, capsys, Browser(act=False), "--timeout", "0.5")
    assert time.monotonic() - started < 5
    assert code == 1
    assert_one_error_line(err, "No redirect from Strava within 0 s", "--timeout")
    assert "/oauth/authorize?" in out  # the URL was printed for the user
    assert_nothing_written(auth_env)


def test_a_long_wait_for_the_browser_is_reminded(simulator, auth_env, monkeypatch, capsys):
    """Issue 13.2: a wait shows a line at least every minute (here every 0.4 s)."""
    monkeypatch.setattr(callback_server, "WAIT_REMINDER_SECONDS", 0.4)
    code, out, err = run_helper(monkeypatch, capsys, Browser(act=False), "--timeout", "1.5")
    assert code == 1
    assert_one_error_line(err, "No redirect from Strava within")
    reminders = [line for line in out.splitlines() if "Still waiting for Strava's redirect" in line]
    assert len(reminders) >= 2, out


def test_redirect_with_a_foreign_state_is_refused(simulator, auth_env, monkeypatch, capsys):
    def forge(location: str) -> str:
        parts = urlsplit(location)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        query["state"] = "not-ours"
        return urlunsplit(parts._replace(query=urlencode(query)))

    code, _, err = run_helper(monkeypatch, capsys, Browser(tamper=forge))
    assert code == 1
    assert_one_error_line(err, "state")
    assert_nothing_written(auth_env)


def test_inactive_application_at_the_code_exchange(simulator, auth_env, monkeypatch, capsys):
    simulator.set_app_active(False)
    code, _, err = run_helper(monkeypatch, capsys, Browser())
    assert code == 1
    assert_one_error_line(err, "403 Application Status Inactive", "developer subscription")
    assert_nothing_written(auth_env)


def test_missing_credentials_without_a_terminal(simulator, auth_env, monkeypatch, capsys):
    monkeypatch.delenv("TAP_STRAVA_CLIENT_SECRET")
    monkeypatch.setattr(authorize.sys.stdin, "isatty", lambda: False, raising=False)
    code, _, err = run_helper(monkeypatch, capsys, Browser(act=False))
    assert code == 1
    assert_one_error_line(err, "No client_secret", "TAP_STRAVA_CLIENT_SECRET")


def test_shell_variable_that_would_shadow_env_is_pointed_out(
    simulator, auth_env, monkeypatch, capsys
):
    monkeypatch.setenv("TAP_STRAVA_REFRESH_TOKEN", "exported-in-bashrc")
    code, _, err = run_helper(monkeypatch, capsys, Browser())
    assert code == 0
    assert "also set in this shell's environment" in err


def test_console_script_without_a_browser(simulator, tmp_path):
    """The installed command, headless: it prints the URL; the test follows it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_STRAVA_", "MELTANO_"))}
    env.update(
        TAP_STRAVA_CLIENT_ID=simulator.client_id,
        TAP_STRAVA_CLIENT_SECRET=simulator.client_secret,
        TAP_STRAVA_TOKEN_URL=simulator.token_url,
        TAP_STRAVA_TOKEN_STORE_PATH=str(tmp_path / "tokens.json"),
    )
    env.pop("BROWSER", None)
    env.pop("DISPLAY", None)
    proc = subprocess.Popen(
        [AUTH_SCRIPT, "--port", "0", "--timeout", "20", "--env-file", str(tmp_path / "x.env")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "/oauth/authorize?" in line:
                break
        browser = Browser()
        browser(lines[-1].strip())
        browser.join()
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Open:" in "".join(lines)  # no browser: just the URL
    assert authorize.read_env_file(tmp_path / "x.env") == {
        "TAP_STRAVA_REFRESH_TOKEN": simulator.refresh_token
    }
    assert simulator.refresh_token not in out + err


# -- pieces ----------------------------------------------------------------------------------


def test_authorize_url_is_derived_from_the_token_url():
    assert (
        authorize.authorize_url_for("https://www.strava.com/oauth/token")
        == "https://www.strava.com/oauth/authorize"
    )
    assert (
        authorize.authorize_url_for("http://127.0.0.1:8765/oauth/token/")
        == "http://127.0.0.1:8765/oauth/authorize"
    )
    assert (
        authorize.authorize_url_for("https://proxy.example/strava-token")
        == "https://proxy.example/oauth/authorize"
    )


def test_env_file_update_keeps_lines_and_drops_duplicates(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("A=1\nTAP_STRAVA_REFRESH_TOKEN=x\n\n# c\nTAP_STRAVA_REFRESH_TOKEN=y\n")
    authorize.update_env_file(env_file, {"TAP_STRAVA_REFRESH_TOKEN": "new", "B": 'q"uo te'})
    assert env_file.read_text() == 'A=1\nTAP_STRAVA_REFRESH_TOKEN=new\n\n# c\nB="q\\"uo te"\n'
    assert authorize.read_env_file(env_file) == {
        "A": "1",
        "TAP_STRAVA_REFRESH_TOKEN": "new",
        "B": 'q"uo te',
    }
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


AWKWARD_VALUES = {
    "TAP_STRAVA_REFRESH_TOKEN": "0123abcdef",  # what Strava issues: written bare
    "TAP_STRAVA_CLIENT_SECRET": "s p a c e s  # not a comment",
    "QUOTES": """it's "double" and 'single'""",
    "BACKSLASHES": r"C:\new\table \" \\ \'",
    "HASH": "#starts-with-hash",
    "MULTILINE": "line one\nline two\r\n",
    "UNICODE": "Caf\u00e9 \U0001f6b4 \u2014 ok",
    "EMPTY": "",
    "DOLLAR": "$HOME and $ alone",
    "TAP_STRAVA_ATHLETES": json.dumps(
        [
            {"name": "ann", "refresh_token": "a'b\"c"},
            {"name": "bo b#1", "refresh_token": "x\\y", "client_id": "7"},
        ],
        separators=(",", ":"),
    ),
}


def test_env_file_round_trip_through_python_dotenv(tmp_path):
    """What is written reads back identically with `dotenv_values`, as Meltano reads .env.

    Awkward values (quotes, `#`, spaces, backslashes, newlines, a JSON list) next to lines
    the user wrote: those stay exactly as they were, byte for byte.
    """
    from dotenv import dotenv_values

    env_file = tmp_path / ".env"
    kept = (
        "# my project\n"
        "export UNRELATED='keep me # as is'\n"
        'OTHER="two\n'
        'lines"\n'
        "\n"
        "TAP_STRAVA_REFRESH_TOKEN=old  # replaced below\n"
        "LAST=no-newline-at-end"
    )
    env_file.write_text(kept, encoding="utf-8")
    env_file.chmod(0o644)
    authorize.update_env_file(env_file, AWKWARD_VALUES)

    values = dotenv_values(env_file)
    assert {key: values[key] for key in AWKWARD_VALUES} == AWKWARD_VALUES
    assert values["UNRELATED"] == "keep me # as is"
    assert values["OTHER"] == "two\nlines"
    assert values["LAST"] == "no-newline-at-end"
    assert authorize.read_env_file(env_file) == values
    athletes = json.loads(values["TAP_STRAVA_ATHLETES"] or "")
    assert [a["name"] for a in athletes] == ["ann", "bo b#1"]
    text = env_file.read_text(encoding="utf-8")
    assert text.startswith(
        "# my project\nexport UNRELATED='keep me # as is'\nOTHER=\"two\nlines\"\n\n"
        "TAP_STRAVA_REFRESH_TOKEN=0123abcdef\nLAST=no-newline-at-end\n"
    ), text
    assert text.count("TAP_STRAVA_REFRESH_TOKEN") == 1
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # even if it was 0644

    # Updating again changes nothing: the written form is stable.
    authorize.update_env_file(env_file, AWKWARD_VALUES)
    assert env_file.read_text(encoding="utf-8") == text


def test_env_file_update_refuses_what_would_not_read_back(tmp_path):
    """`${...}` is expanded by python-dotenv; a key on an unparsable line would be lost."""
    env_file = tmp_path / ".env"
    env_file.write_text("A=1\n")
    with pytest.raises(authorize.AuthorizeError, match=r"contains '\$\{'"):
        authorize.update_env_file(env_file, {"B": "x${HOME}y"})
    broken = 'TAP_STRAVA_ATHLETES=\'[{"name": "ann\'s"}]\'\n'
    env_file.write_text(f"A=1\n{broken}")
    with pytest.raises(authorize.AuthorizeError, match=r"Line 2 of .* is not valid dotenv"):
        authorize.update_env_file(env_file, {"TAP_STRAVA_ATHLETES": "[]"})
    assert env_file.read_text() == f"A=1\n{broken}"  # nothing written
    authorize.update_env_file(env_file, {"C": "3"})  # a broken line of another key is kept
    assert env_file.read_text() == f"A=1\n{broken}C=3\n"


def test_no_console_browser_on_a_headless_machine(monkeypatch):
    monkeypatch.setattr(authorize.sys, "platform", "linux")
    assert not authorize.can_open_browser({})
    assert authorize.can_open_browser({"DISPLAY": ":0"})
    assert authorize.can_open_browser({"BROWSER": "firefox"})


def test_meltano_config_fills_what_the_environment_lacks(simulator, auth_env, monkeypatch, capsys):
    monkeypatch.delenv("TAP_STRAVA_CLIENT_SECRET")
    monkeypatch.delenv("TAP_STRAVA_TOKEN_STORE_PATH")
    store = auth_env / "from-meltano" / "tokens.json"
    (auth_env / "meltano.yml").write_text("project_id: x\n")
    monkeypatch.setattr(
        authorize,
        "meltano_config",
        lambda root: {
            "client_id": "not-used-env-wins",
            "client_secret": simulator.client_secret,
            "token_store_path": str(store),
        },
    )
    monkeypatch.setattr(authorize.webbrowser, "open", Browser())
    args = authorize.build_parser().parse_args(["--port", "0"])
    settings = authorize.resolve_settings(args, dict(os.environ), interactive=False)
    assert settings.client_id == simulator.client_id
    assert settings.sources == {
        "client_id": "environment",
        "client_secret": "meltano config",
        "token_url": "environment",
        "token_store_path": "meltano config",
    }
    assert settings.token_store_path == store


def test_meltano_config_reads_the_real_project(tmp_path, monkeypatch):
    project_root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("MELTANO_DATABASE_URI", f"sqlite:///{tmp_path / 'meltano.db'}")
    monkeypatch.setenv("TAP_STRAVA_CLIENT_ID", "4242")
    config = authorize.meltano_config(project_root)
    assert config["client_id"] == "4242"
    assert config["token_store_path"] == str(project_root / ".secrets" / "strava-tokens.json")


def test_athlete_option_sets_that_entry_of_athletes_and_keeps_the_others(
    simulator, auth_env, monkeypatch, capsys
):
    """Several athletes: `--athlete bob` fills bob's entry; ann's stays; scope recorded."""
    from dotenv import dotenv_values  # what Meltano reads .env with

    ann = {"name": "ann", "refresh_token": 'ann\'s-token, "quoted"'}
    # Single-quoted as python-dotenv (Meltano) reads it: the quote inside escaped.
    quoted = json.dumps([ann]).replace("'", "\\'")
    (auth_env / ".env").write_text(f"TAP_STRAVA_ATHLETES='{quoted}'\n")
    assert json.loads(dotenv_values(auth_env / ".env")["TAP_STRAVA_ATHLETES"] or "") == [ann]
    code, out, err = run_helper(monkeypatch, capsys, Browser(), "--athlete", "bob")
    assert code == 0, err
    athletes = json.loads(dotenv_values(auth_env / ".env")["TAP_STRAVA_ATHLETES"] or "")
    assert athletes == [ann, {"name": "bob", "refresh_token": simulator.refresh_token}]
    assert "TAP_STRAVA_REFRESH_TOKEN" not in authorize.read_env_file(auth_env / ".env")
    assert simulator.refresh_token not in out + err

    # The token store knows what was granted (a reconcile needs activity:read_all).
    store = TokenStore(
        auth_env / "store" / "tokens.json",
        client_id=simulator.client_id,
        configured_refresh_token=str(simulator.refresh_token),
    )
    stored = store.load()
    assert stored is not None
    assert stored.scope == "activity:read_all,profile:read_all,read"

    # Again for bob: his entry is replaced, not duplicated.
    code, _, err = run_helper(monkeypatch, capsys, Browser(), "--athlete", "bob")
    assert code == 0, err
    athletes = json.loads(dotenv_values(auth_env / ".env")["TAP_STRAVA_ATHLETES"] or "")
    assert [a["name"] for a in athletes] == ["ann", "bob"]
    assert athletes[1]["refresh_token"] == simulator.refresh_token
