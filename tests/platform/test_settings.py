"""Settings read from the environment (apt_model.runtime.settings) and a plugin's declared settings
(apt_model.runtime.plugin_settings), as functions: every variable's parser and its edges, each
refusal's whole sentence, token files, where generated tokens live and how they are made. What
`make mutate`'s runtime-settings target runs (under a second)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from apt_model import errors
from apt_model.runtime import plugin_settings as ps
from apt_model.runtime.settings import (SHARED_VARIABLES, Settings, ensure_local_tokens, read_local_token,
                                        secrets_dir)


def refusal(env: dict, **kwargs) -> str:
    with pytest.raises(errors.InvalidArgument) as info:
        Settings.from_env(env, **kwargs)
    return info.value.message


# ---- Settings.from_env ----------------------------------------------------------------------

def test_the_process_environment_is_read_when_none_is_given(monkeypatch):
    for key in [k for k in os.environ if k.startswith("APT_")]:   # scripts/test.sh sets APT_TEST_TRACE
        monkeypatch.delenv(key)
    monkeypatch.setenv("APT_JOB_WORKERS", "5")
    assert Settings.from_env().job_workers == 5


def test_other_variables_before_ours_are_skipped_not_the_end_of_the_reading():
    s = Settings.from_env({"HOME": "/root", "LANG": "C", "APT_TOKEN": "t", "PATH": "/bin", "APT_JOB_WORKERS": "3"})
    assert (s.token, s.job_workers) == ("t", 3)


def test_an_empty_environment_gives_every_default():
    assert Settings.from_env({}) == Settings()
    s = Settings()
    assert (s.home, s.listen, s.deployer, s.router, s.log_json, s.max_queued_jobs, s.plugin_env) == (
        Path(".apt"), "127.0.0.1:50051", "local", "native", True, 64, {})


def test_each_variable_is_parsed_into_its_field():
    env = {
        "APT_HOME": "/data/apt", "APT_LISTEN": "0.0.0.0:1", "APT_TOKEN": "t", "APT_ADMIN_TOKEN": "a",
        "APT_INTERNAL_TOKEN": "i", "APT_TLS_CERT": "/c.pem", "APT_TLS_KEY": "/k.pem",
        "APT_MAX_MESSAGE_BYTES": "1024", "APT_GRACE_SECONDS": "2.5", "APT_JOB_WORKERS": "3",
        "APT_DEPLOYER": "docker", "APT_PLUGIN_PATH": f"/p1{os.pathsep}{os.pathsep}/p2", "APT_LOG_LEVEL": "debug",
        "APT_LOG_JSON": "0", "APT_HEALTH_INTERVAL": "1.5", "APT_INSTALL_TIMEOUT": "30", "APT_THREADS": "4",
        "APT_ROUTER": "PYTHON", "APT_ROUTER_BIN": "/bin/r", "APT_DATA_ROOTS": f"/d1{os.pathsep}/d2{os.pathsep}",
        "APT_ALLOWED_ENDPOINTS": " http://a:1 ,, http://b:2,", "APT_SECRETS_DIR": "/s",
        "APT_ALLOW_PLAINTEXT": " Yes ", "APT_PUBLISH_ADDR": " 10.0.0.1 ", "APT_MAX_MODEL_PARAMS": "5",
        "APT_STORE_QUOTA": "0", "APT_MAX_QUEUED_JOBS": "7", "APT_MAX_UPLOADS": "2",
        "APT_UPLOAD_IDLE_SECONDS": "0.5", "HOME": "/root", "PATH": "/bin",
    }
    s = Settings.from_env(env)
    assert s == Settings(
        home=Path("/data/apt"), listen="0.0.0.0:1", token="t", admin_token="a", internal_token="i",
        tls_cert="/c.pem", tls_key="/k.pem", max_message_bytes=1024, grace_seconds=2.5, job_workers=3,
        deployer="docker", plugin_path=("/p1", "/p2"), log_level="DEBUG", log_json=False, health_interval=1.5,
        install_timeout=30.0, threads=4, router="python", router_bin="/bin/r", data_roots=("/d1", "/d2"),
        allowed_endpoints=("http://a:1", "http://b:2"), secrets_dir=Path("/s"), allow_plaintext=True,
        publish_addr="10.0.0.1", max_model_params=5, store_quota=0, max_queued_jobs=7, max_uploads=2,
        upload_idle_seconds=0.5)


@pytest.mark.parametrize("raw, expected", [("1", True), ("true", True), ("ON", True), ("yes", True),
                                           ("0", False), ("no", False), ("", False), ("maybe", False)])
def test_allow_plaintext_is_on_only_when_said_so(raw, expected):
    assert Settings.from_env({"APT_ALLOW_PLAINTEXT": raw}).allow_plaintext is expected


@pytest.mark.parametrize("raw, expected", [("0", False), ("false", False), ("NO", False), ("1", True),
                                           ("off", True), ("", True)])
def test_json_logs_are_off_only_when_said_so(raw, expected):
    assert Settings.from_env({"APT_LOG_JSON": raw}).log_json is expected


@pytest.mark.parametrize("var, raw, why", [
    ("APT_MAX_MODEL_PARAMS", "0", "must be a positive integer"),
    ("APT_MAX_MODEL_PARAMS", "-1", "must be a positive integer"),
    ("APT_MAX_QUEUED_JOBS", "0", "must be a positive integer"),
    ("APT_MAX_UPLOADS", "0", "must be a positive integer"),
    ("APT_STORE_QUOTA", "-1", "must be 0 or more"),
    ("APT_UPLOAD_IDLE_SECONDS", "0", "must be a positive number"),
    ("APT_UPLOAD_IDLE_SECONDS", "-0.5", "must be a positive number"),
    ("APT_UPLOAD_IDLE_SECONDS", "nan", "must be a positive number"),
    ("APT_JOB_WORKERS", "two", "invalid literal for int() with base 10: 'two'"),
    ("APT_GRACE_SECONDS", "soon", "could not convert string to float: 'soon'"),
])
def test_a_bad_value_names_its_variable_and_what_is_wrong(var, raw, why):
    assert refusal({var: raw}) == f"{var}={raw!r} is not valid: {why}"


def test_the_smallest_allowed_values_pass():
    s = Settings.from_env({"APT_MAX_MODEL_PARAMS": "1", "APT_MAX_QUEUED_JOBS": "1", "APT_MAX_UPLOADS": "1",
                           "APT_STORE_QUOTA": "0", "APT_UPLOAD_IDLE_SECONDS": "0.001"})
    assert (s.max_model_params, s.max_queued_jobs, s.max_uploads, s.store_quota, s.upload_idle_seconds) == (
        1, 1, 1, 0, 0.001)


def test_an_unknown_variable_is_refused_with_the_known_ones():
    message = refusal({"APT_TOKN": "x", "APT_ZZZ": "y"})
    assert message.startswith("Unknown setting APT_TOKN; known APT_* variables: APT_ADMIN_TOKEN, APT_ALLOWED_ENDPOINTS, ")
    assert message.endswith(", APT_WHEEL_PORT. A plugin's own settings are the ones its plugin.yaml declares "
                            "(settings:).")
    known = message.split("known APT_* variables: ")[1].split(". A plugin")[0].split(", ")
    assert known == sorted(known) and "APT_DEBUG" in known and "APT_UPLOAD_IDLE_SECONDS" in known


def test_variables_other_parts_read_are_tolerated_and_not_kept():
    s = Settings.from_env({"APT_IMAGE_TAG": "x", "APT_GATEWAY": "h:1", "APT_DEBUG": "1", "NOT_APT": "z"})
    assert s == Settings()


def test_declared_plugin_settings_are_tolerated_and_kept_as_given():
    env = {"APT_OLLAMA_URL": " http://o:1 ", "APT_B": "2", "APT_HOME": "/h"}
    s = Settings.from_env(env, declared=["APT_B", "APT_OLLAMA_URL", "APT_UNUSED"])
    assert s.plugin_env == {"APT_B": "2", "APT_OLLAMA_URL": " http://o:1 "} and list(s.plugin_env) == ["APT_B", "APT_OLLAMA_URL"]
    assert s.home == Path("/h")
    # a function of the settings parsed so far (the gateway's catalogue depends on APT_PLUGIN_PATH)
    seen = []
    s = Settings.from_env({"APT_B": "2", "APT_PLUGIN_PATH": "/cat"},
                          declared=lambda parsed: seen.append(parsed.plugin_path) or ["APT_B"])
    assert seen == [("/cat",)] and s.plugin_env == {"APT_B": "2"}
    assert "Unknown setting APT_C" in refusal({"APT_B": "2", "APT_C": "3"}, declared=["APT_B"])


def test_overrides_win_over_the_environment():
    s = Settings.from_env({"APT_LISTEN": "0.0.0.0:1"}, listen="127.0.0.1:0", token="tok")
    assert (s.listen, s.token) == ("127.0.0.1:0", "tok")


@pytest.mark.parametrize("env, message", [
    ({"APT_DEPLOYER": "podman"}, "APT_DEPLOYER='podman'; use local, docker or kubernetes."),
    ({"APT_ROUTER": "rust"}, "APT_ROUTER='rust'; use native or python."),
    ({"APT_DATA_ROOTS": f"/ok{os.pathsep}relative/dir"},
     "APT_DATA_ROOTS entry 'relative/dir' is not an absolute path."),
    ({"APT_TLS_CERT": "/c.pem"}, "Set both APT_TLS_CERT and APT_TLS_KEY for TLS, or neither."),
    ({"APT_TLS_KEY": "/k.pem"}, "Set both APT_TLS_CERT and APT_TLS_KEY for TLS, or neither."),
])
def test_settings_that_cannot_work_together_are_refused(env, message):
    assert refusal(env) == message


def test_each_deployer_and_router_is_accepted():
    for deployer in ("local", "docker", "kubernetes"):
        assert Settings.from_env({"APT_DEPLOYER": deployer}).deployer == deployer
    assert Settings.from_env({"APT_ROUTER": "Native"}).router == "native"


def test_a_token_can_come_from_a_mounted_file(tmp_path):
    for attr, var in (("token", "APT_TOKEN_FILE"), ("admin_token", "APT_ADMIN_TOKEN_FILE"),
                      ("internal_token", "APT_INTERNAL_TOKEN_FILE")):
        (tmp_path / attr).write_text(f"  {attr}-value\n")
        assert getattr(Settings.from_env({var: str(tmp_path / attr)}), attr) == f"{attr}-value"
    # the file variable is consumed, not left behind as an unknown one, and the caller's dict is untouched
    env = {"APT_TOKEN_FILE": str(tmp_path / "token")}
    Settings.from_env(env)
    assert env == {"APT_TOKEN_FILE": str(tmp_path / "token")}


def test_a_token_file_that_cannot_serve_is_refused(tmp_path):
    (tmp_path / "empty").write_text(" \n")
    assert refusal({"APT_TOKEN_FILE": str(tmp_path / "empty")}) == (
        f"APT_TOKEN_FILE={str(tmp_path / 'empty')!r} is empty; put the token in it (make secrets writes them).")
    assert refusal({"APT_ADMIN_TOKEN_FILE": str(tmp_path / "nope")}) == (
        f"APT_ADMIN_TOKEN_FILE={str(tmp_path / 'nope')!r} cannot be read (No such file or directory).")
    (tmp_path / "t").write_text("x")
    assert refusal({"APT_TOKEN_FILE": str(tmp_path / "t"), "APT_TOKEN": "y"}) == (
        "Set APT_TOKEN or APT_TOKEN_FILE, not both.")
    assert refusal({"APT_INTERNAL_TOKEN_FILE": str(tmp_path / "t"), "APT_INTERNAL_TOKEN": "y"}) == (
        "Set APT_INTERNAL_TOKEN or APT_INTERNAL_TOKEN_FILE, not both.")


def test_replace_changes_only_what_it_names():
    s = Settings(token="t", job_workers=3)
    r = s.replace(listen="x:1")
    assert r == Settings(token="t", job_workers=3, listen="x:1") and s.listen == "127.0.0.1:50051"


def test_the_shared_variables_are_the_parsed_the_tolerated_and_the_token_files():
    assert {"APT_HOME", "APT_ADMIN_TOKEN", "APT_IMAGE_TAG", "APT_ADMIN_TOKEN_FILE", "APT_TOKEN_FILE",
            "APT_INTERNAL_TOKEN_FILE", "APT_UPLOAD_IDLE_SECONDS"} <= SHARED_VARIABLES
    assert "APT_OLLAMA_URL" not in SHARED_VARIABLES


# ---- where tokens live ------------------------------------------------------------------------

def test_generated_tokens_live_beside_the_store_never_in_it(tmp_path):
    assert secrets_dir(tmp_path / "store") == tmp_path / ".store-secrets"
    assert secrets_dir(tmp_path / ".apt") == tmp_path / ".apt-secrets"
    assert secrets_dir(tmp_path / "...") == tmp_path / ".apt-secrets"
    assert secrets_dir(tmp_path / "X.box") == tmp_path / ".X.box-secrets"   # only leading dots are dropped
    assert secrets_dir(tmp_path / "store", tmp_path / "chosen") == tmp_path / "chosen"
    assert secrets_dir(Path("rel")) == Path("rel").absolute().parent / ".rel-secrets"


def test_missing_tokens_are_generated_once_private_and_kept(tmp_path):
    home = tmp_path / "store"
    first = ensure_local_tokens(Settings(home=home, token="given"))
    folder = tmp_path / ".store-secrets"
    assert first.token == "given" and not (folder / "token").exists()
    assert len(first.admin_token) == 64 and len(first.internal_token) == 64 and first.admin_token != first.internal_token
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("admin_token", "internal_token"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    again = ensure_local_tokens(Settings(home=home))
    assert (again.admin_token, again.internal_token) == (first.admin_token, first.internal_token)
    assert again.token == (folder / "token").read_text() and len(again.token) == 64
    assert read_local_token(home) == again.token
    assert read_local_token(home, "admin_token") == first.admin_token
    assert read_local_token(home, "internal_token", configured=tmp_path / "elsewhere") == ""
    all_given = Settings(home=home, token="a", admin_token="b", internal_token="c")
    assert ensure_local_tokens(all_given) is all_given


def test_tokens_go_to_the_configured_folder_made_with_its_parents(tmp_path):
    chosen = tmp_path / "a" / "b" / "secrets"
    s = ensure_local_tokens(Settings(home=tmp_path / "store", secrets_dir=chosen))
    assert (chosen / "token").read_text() == s.token
    assert not (tmp_path / ".store-secrets").exists()
    assert read_local_token(tmp_path / "store", configured=chosen) == s.token


def test_a_folder_made_too_open_is_closed_again(tmp_path):
    folder = tmp_path / ".store-secrets"
    folder.mkdir(mode=0o755)
    ensure_local_tokens(Settings(home=tmp_path / "store"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_tokens_an_older_version_kept_in_the_store_are_moved_out(tmp_path):
    home = tmp_path / "store"
    (home / "secrets").mkdir(parents=True)
    (home / "secrets" / "token").write_text("old-user\n")
    (home / "secrets" / "admin_token").write_text("old-admin")
    (home / "secrets" / "other").write_text("junk")
    folder = tmp_path / ".store-secrets"
    folder.mkdir()
    (folder / "admin_token").write_text("new-admin")     # one already outside wins
    s = ensure_local_tokens(Settings(home=home))
    assert (s.token, s.admin_token) == ("old-user", "new-admin")
    assert not (home / "secrets").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["admin_token", "internal_token", "token"]


# ---- a plugin's declared settings -------------------------------------------------------------

def declared(items, path=Path("/p/plugin.yaml")):
    return ps.declared_settings(items, path)


def declared_refusal(items) -> str:
    with pytest.raises(errors.FailedPrecondition) as info:
        declared(items)
    return info.value.message


def test_declarations_give_typed_defaults():
    specs = declared([
        {"name": "APT_A_URL", "type": "url", "default": "http://h:1/", "help": "where"},
        {"name": "APT_B", "type": "int", "default": 3},
        {"name": "APT_C", "type": "bool", "default": True},
        {"name": "APT_D2_X", "type": "float"},
        {"name": "APT_E"},
        {"name": "APT_F", "type": "bool", "default": False},
        {"name": "APT_G", "type": "url"},
        {"name": "APT_H", "type": "str", "default": True},
        {"name": "APT_I", "type": "str", "default": False},
    ])
    assert specs == (ps.SettingSpec("APT_A_URL", "url", "http://h:1", "where"), ps.SettingSpec("APT_B", "int", 3, ""),
                     ps.SettingSpec("APT_C", "bool", True, ""), ps.SettingSpec("APT_D2_X", "float", None, ""),
                     ps.SettingSpec("APT_E", "str", "", ""), ps.SettingSpec("APT_F", "bool", False, ""),
                     ps.SettingSpec("APT_G", "url", "", ""), ps.SettingSpec("APT_H", "str", "true", ""),
                     ps.SettingSpec("APT_I", "str", "false", ""))
    assert declared(None) == ()


@pytest.mark.parametrize("items, why", [
    ("APT_X", "must be a list of {name, type, default, help}, not 'APT_X'."),
    ({"name": "APT_X"}, "must be a list of {name, type, default, help}, not {'name': 'APT_X'}."),
    (["APT_X"], "'APT_X': each entry is a mapping with name and optionally default, help, type."),
    ([{"type": "str"}], "{'type': 'str'}: each entry is a mapping with name and optionally default, help, type."),
    ([{"name": "APT_X", "kind": "str"}], "{'name': 'APT_X', 'kind': 'str'}: each entry is a mapping with name and "
                                         "optionally default, help, type."),
    ([{"name": "apt_x"}], "'apt_x' is not a name such as APT_OLLAMA_URL (APT_ then upper-case words joined by _)."),
    ([{"name": 5}], "5 is not a name such as APT_OLLAMA_URL (APT_ then upper-case words joined by _)."),
    ([{"name": "APT_1X"}], "'APT_1X' is not a name such as APT_OLLAMA_URL (APT_ then upper-case words joined by _)."),
    ([{"name": "APT_X__Y"}], "'APT_X__Y' is not a name such as APT_OLLAMA_URL (APT_ then upper-case words joined by _)."),
    ([{"name": "APT_X_"}], "'APT_X_' is not a name such as APT_OLLAMA_URL (APT_ then upper-case words joined by _)."),
    ([{"name": "XAPT_X"}], "'XAPT_X' is not a name such as APT_OLLAMA_URL (APT_ then upper-case words joined by _)."),
    ([{"name": "APT_X\n"}], "'APT_X\\n' is not a name such as APT_OLLAMA_URL (APT_ then upper-case words joined by _)."),
    ([{"name": "APT_X"}, {"name": "APT_X"}], "APT_X is declared twice."),
    ([{"name": "APT_X", "type": "list"}], "APT_X: type 'list' is not one of str, int, float, bool, url."),
    ([{"name": "APT_X", "type": "int", "default": "many"}],
     "default: APT_X='many' is not a valid int: invalid literal for int() with base 10: 'many'."),
    ([{"name": "APT_X", "type": "url", "default": "ftp://h"}],
     "default: APT_X='ftp://h' is not a valid url: use an http:// or https:// URL with a host, such as "
     "http://127.0.0.1:11434."),
])
def test_a_bad_declaration_names_the_file_and_the_fix(items, why):
    assert declared_refusal(items) == f"/p/plugin.yaml: settings: {why}"


def test_a_shared_variable_cannot_be_declared():
    for name in ("APT_ADMIN_TOKEN", "APT_TOKEN_FILE", "APT_HOME"):
        assert declared_refusal([{"name": name}]) == (
            f"/p/plugin.yaml: settings: {name} is one of the platform's own variables (apt_model/runtime/settings.py), "
            "which no plugin may declare: the gateway passes a plugin its declared variables. Pick a name of the "
            "plugin's own, such as APT_<PLUGIN>_<WHAT>.")


@pytest.mark.parametrize("kind, raw, value", [
    ("str", " x ", " x "), ("int", "7", 7), ("float", "0.5", 0.5), ("bool", " ON ", True), ("bool", "off", False),
    ("bool", "Yes", True), ("bool", "0", False), ("url", " https://h:1/a/ ", "https://h:1/a"),
    ("url", "http://h", "http://h"), ("url", "http://BOX/", "http://BOX"),
])
def test_a_value_is_parsed_by_its_type(kind, raw, value):
    assert ps.SettingSpec("APT_X", kind, "dflt", "").parse(raw) == value


def test_unset_or_blank_gives_the_default():
    spec = ps.SettingSpec("APT_X", "int", 9, "")
    assert spec.parse(None) == 9 and spec.parse("") == 9 and spec.parse("  ") == 9


@pytest.mark.parametrize("kind, raw, why", [
    ("bool", "maybe", "use one of 1, true, yes, on, 0, false, no, off"),
    ("url", "h:1", "use an http:// or https:// URL with a host, such as http://127.0.0.1:11434"),
    ("url", "http://", "use an http:// or https:// URL with a host, such as http://127.0.0.1:11434"),
    ("url", "file:///etc/passwd", "use an http:// or https:// URL with a host, such as http://127.0.0.1:11434"),
    ("float", "x", "could not convert string to float: 'x'"),
])
def test_a_bad_value_names_the_variable_and_its_type(kind, raw, why):
    with pytest.raises(errors.InvalidArgument) as info:
        ps.SettingSpec("APT_X", kind, None, "").parse(raw)
    assert info.value.message == f"APT_X={raw!r} is not a valid {kind}: {why}."


def test_plugin_settings_reads_each_declared_variable_from_the_environment():
    class Manifest:
        settings = declared([{"name": "APT_A", "type": "int", "default": 1}, {"name": "APT_B", "type": "bool"}])

    assert ps.plugin_settings(Manifest, {"APT_A": "5", "APT_OTHER": "x"}) == {"APT_A": 5, "APT_B": None}
    assert ps.plugin_settings(Manifest, {}) == {"APT_A": 1, "APT_B": None}
