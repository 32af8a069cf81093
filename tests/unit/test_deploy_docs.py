"""The deployment examples (docs/deploy/, docs/operations.md, docs/ci.md) stay true to the code.

The example configs are loaded with the daemons' own loaders, their option lists
compared with the loaders' key tables and the CLI flags, their stated defaults
with what the code really uses; the systemd units, CI snippets, metric names,
log events and exit codes the docs mention are checked against the code.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import master.config as master_config
import master.daemon_cli as master_cli
import slave.cli as slave_cli
import slave.config as slave_config
from master.client.api import EXIT_ERROR, OUTCOME_EXIT
from master.feed import settings as feed_settings
from master.feed.settings import FeedSettings
from master.http.keys import HTTP_KEYS, HttpSettings
from master.retention import RETENTION_SETTINGS, RetentionSettings
from pyti.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
OPERATIONS = ROOT / "docs" / "operations.md"
CI_DOC = ROOT / "docs" / "ci.md"

_SECTION = re.compile(r"^\[([a-z_]+)\]\s*$")
_ACTIVE = re.compile(r"^([a-z_]+) = (.+)$")
_COMMENTED = re.compile(r"^# ([a-z_]+) = (.+)$")
_DEFAULT = re.compile(r"^# Default: (.+)$")


@dataclass(frozen=True)
class Option:
    """One setting as the example file shows it."""

    section: str  # "" for the top level
    key: str
    value: str  # TOML text of the value
    commented: bool
    default: str | None  # text after "# Default:" in the comment block above it
    line: int


def _toml_value(text: str) -> tuple[bool, Any]:
    try:
        return True, tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return False, None


def example_options(path: Path) -> list[Option]:
    """Every option line, active or commented out, with the default its comment states."""
    options: list[Option] = []
    section = ""
    block: list[str] = []  # comment lines since the last blank or option line
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if header := _SECTION.match(line):
            section, block = header.group(1), []
            continue
        match = _ACTIVE.match(line) or _COMMENTED.match(line)
        if match and _toml_value(match.group(2))[0]:
            defaults = [d.group(1) for b in block if (d := _DEFAULT.match(b))]
            options.append(
                Option(
                    section,
                    match.group(1),
                    match.group(2),
                    line.startswith("#"),
                    defaults[-1] if len(defaults) == 1 else None,
                    number,
                )
            )
            block = []
        elif line.startswith("#"):
            block.append(line)
        else:
            block = []
    return options


def keys_by_section(options: list[Option]) -> dict[str, set[str]]:
    """``{section: {key, ...}}`` over active and commented options."""
    out: dict[str, set[str]] = {}
    for option in options:
        out.setdefault(option.section, set()).add(option.key)
    return out


def uncommented(path: Path, alternatives: Mapping[str, str]) -> str:
    """The example with every commented option turned on (an active alternative turned off)."""
    options = example_options(path)
    on = {o.line for o in options if o.commented}
    turned_on = {o.key for o in options if o.commented}
    replaced = {alternatives[k] for k in turned_on if k in alternatives}
    off = {o.line for o in options if not o.commented and o.key in replaced}
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(
        line[2:] if n in on else "" if n in off else line for n, line in enumerate(lines, 1)
    )


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A valid shared-secret file."""
    path = tmp_path / "secret"
    path.write_text("0123456789abcdef0123456789abcdef\n")
    return path


# ----------------------------------------------------------------- master ----

MASTER_EXAMPLE = DEPLOY / "master.toml"
#: When the example turns the first on, the second (active in it) must go: they exclude each other.
MASTER_ALTERNATIVES = {"callback_secret": "callback_secret_file"}
#: Settings whose default is not a value one could write (required, derived, or "none").
MASTER_PROSE_DEFAULTS = {
    "data_dir", "secret_file", "token_file", "database", "master_name", "tls_cert", "tls_key",
    "callback_secret", "callback_secret_file",
}  # fmt: skip


def master_known() -> dict[str, set[str]]:
    """The keys the master's loaders accept, per table (their own tables, not a copy)."""
    top = set(master_config.FILE_SETTINGS) | set(master_config.FLAG_SETTINGS)
    feed = {f.name for f in dataclasses.fields(FeedSettings)} - feed_settings._FROM_MASTER
    return {"": top, "feed": feed, "http": set(HTTP_KEYS), "retention": set(RETENTION_SETTINGS)}


def load_master(
    file_values: dict[str, Any], tmp_path: Path, secret: Path
) -> tuple[master_config.MasterConfig, FeedSettings, HttpSettings]:
    """Everything the master builds from its settings, with host paths pointed into tmp_path."""
    flags = {"data_dir": str(tmp_path / "data"), "secret_file": str(secret)}
    if "token_file" in file_values:
        tokens = tmp_path / "tokens"
        tokens.write_text("# CI\nabc\n")
        flags["token_file"] = str(tokens)
    values = master_config.merge(file_values, flags)
    if "secret_files" in values:
        values["secret_files"] = (str(secret),)
    if "callback_secret_file" in values.get("http", {}):
        values["http"] = {**values["http"], "callback_secret_file": str(secret)}
    config = master_config.build_config(values)
    feed, http = FeedSettings.from_config(config), HttpSettings.from_config(config)
    retention = dataclasses.asdict(RetentionSettings.from_table(config.retention))
    # The raw tables are checked through what they build; keep them out of comparisons.
    return dataclasses.replace(config, feed={}, http={}, retention=retention), feed, http


def test_master_example_loads_with_the_daemons_loader(tmp_path: Path, secret_file: Path) -> None:
    """docs/deploy/master.toml passes read_toml, build_config and the [feed]/[http] checks."""
    config, feed, http = load_master(master_config.read_toml(MASTER_EXAMPLE), tmp_path, secret_file)
    assert (config.slave_port, config.http_host, config.http_port) == (7600, "127.0.0.1", 7680)
    assert feed.interval > 0 and http.callback_secret is not None


def test_master_example_lists_every_option_the_loader_knows() -> None:
    """No setting of master/config.py, [feed] or [http] is missing, none is extra."""
    shown = keys_by_section(example_options(MASTER_EXAMPLE))
    assert shown == master_known()


def test_master_example_optional_lines_are_accepted(tmp_path: Path, secret_file: Path) -> None:
    """With every commented-out option turned on, the example still loads."""
    path = tmp_path / "all.toml"
    path.write_text(uncommented(MASTER_EXAMPLE, MASTER_ALTERNATIVES))
    config, _, http = load_master(master_config.read_toml(path), tmp_path, secret_file)
    assert config.tls_cert is not None and http.callback_secret is not None


def test_master_defaults_stated_are_the_codes_defaults(tmp_path: Path, secret_file: Path) -> None:
    """Each "Default:" of the example, written as the value, changes nothing the master builds."""
    base = load_master({}, tmp_path, secret_file)
    prose = set()
    for option in example_options(MASTER_EXAMPLE):
        assert option.default is not None, f"{option.key}: no single '# Default:' line above it"
        ok, _ = _toml_value(option.default)
        if not ok:
            prose.add(option.key)
            continue
        line = f"{option.key} = {option.default}\n"
        path = tmp_path / f"{option.section or 'top'}-{option.key}.toml"
        path.write_text(f"[{option.section}]\n{line}" if option.section else line)
        built = load_master(master_config.read_toml(path), tmp_path, secret_file)
        assert built == base, f"{option.key}: the stated default {option.default} is not the code's"
    assert prose == MASTER_PROSE_DEFAULTS


# ------------------------------------------------------------------ slave ----

SLAVE_EXAMPLE = DEPLOY / "slave.toml"
SLAVE_PROSE_DEFAULTS = {"master", "secret_file", "image_dir", "work_dir", "name", "memory_mb",
                        "cpus", "tls_ca", "tls_server_name"}  # fmt: skip
SLAVE_REQUIRED = {"master": "127.0.0.1:7600", "image_dir": "/nonexistent/images"}


def slave_known() -> dict[str, set[str]]:
    """The keys slave/config.py accepts, and the phases of its [timeouts] table."""
    return {
        "": set(slave_config.SETTINGS) - {"timeouts"},
        "timeouts": set(slave_config.DEFAULT_TIMEOUTS),
    }


def load_slave(file_values: dict[str, Any], secret: Path) -> slave_config.SlaveConfig:
    """The slave's config from file values, the secret file pointed at ``secret``."""
    return slave_config.build_config({"secret_file": str(secret)}, file_values)


def test_slave_example_loads_with_the_daemons_loader(secret_file: Path) -> None:
    """docs/deploy/slave.toml passes load_toml and build_config."""
    config = load_slave(slave_config.load_toml(SLAVE_EXAMPLE), secret_file)
    assert (config.master_port, config.accel, config.slots) == (7600, "auto", 1)


def test_slave_example_lists_every_option_the_loader_knows() -> None:
    """No setting of slave/config.py and no [timeouts] phase is missing, none is extra."""
    assert keys_by_section(example_options(SLAVE_EXAMPLE)) == slave_known()


def test_slave_example_optional_lines_are_accepted(secret_file: Path, tmp_path: Path) -> None:
    """With every commented-out option turned on, the example still loads."""
    from tests.integration.test_master_tls import _self_signed

    ca, _ = _self_signed(tmp_path)  # the example's CA path must hold a real PEM bundle
    text = uncommented(SLAVE_EXAMPLE, {}).replace("/etc/pyti/master-ca.pem", str(ca))
    config = load_slave(tomllib.loads(text), secret_file)
    assert config.memory_mb is not None and config.cpus is not None
    assert config.ssl_context() is not None and config.tls_server_name


def test_slave_defaults_stated_are_the_codes_defaults(secret_file: Path) -> None:
    """Each "Default:" of the example, written as the value, changes nothing the slave builds."""
    base = load_slave(dict(SLAVE_REQUIRED), secret_file)
    prose = set()
    for option in example_options(SLAVE_EXAMPLE):
        assert option.default is not None, f"{option.key}: no single '# Default:' line above it"
        ok, value = _toml_value(option.default)
        if not ok:
            prose.add(option.key)
            continue
        entry = {option.section: {option.key: value}} if option.section else {option.key: value}
        built = load_slave({**SLAVE_REQUIRED, **entry}, secret_file)
        assert built == base, f"{option.key}: the stated default {option.default} is not the code's"
    assert prose == SLAVE_PROSE_DEFAULTS


# -------------------------------------------------------------- the CLI ----

EXAMPLES = {"master": MASTER_EXAMPLE, "slave": SLAVE_EXAMPLE}


def long_flags(command: str) -> set[str]:
    """The ``dest`` of every option of ``pyti COMMAND`` (help and --config left out)."""
    parser = build_parser(load=command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        a.dest
        for a in sub.choices[command]._actions
        if a.option_strings and a.dest not in ("help", "config")
    }


def test_every_daemon_flag_is_in_the_example() -> None:
    """Each daemon flag is a key of its example TOML, or named there when it is flag-only."""
    for daemon, known in (("master", master_known()), ("slave", slave_known())):
        example = EXAMPLES[daemon]
        keys = keys_by_section(example_options(example))
        flags = {"timeouts" if f == "timeout" else f for f in long_flags(daemon)}
        settable = set(known[""]) | set(known)  # top-level keys and tables ([timeouts])
        assert flags & settable <= keys[""] | set(keys), daemon
        text = example.read_text("utf-8")
        for flag in sorted(flags - settable):  # the loader has no key for it: say so
            assert f"--{flag.replace('_', '-')}" in text, f"{daemon}: --{flag} not mentioned"


# ---------------------------------------------------------- systemd units ----

UNITS = {"master": DEPLOY / "pyti-master.service", "slave": DEPLOY / "pyti-slave.service"}


Unit = dict[str, dict[str, str]]


def read_unit(path: Path) -> Unit:
    """A unit file: section -> key -> value; a repeated key's values joined by newlines."""
    unit: Unit = {}
    section: dict[str, str] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            assert line[1:-1] not in unit, f"{path}: section {line} twice"
            section = unit.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert section is not None and sep, f"{path}: {raw!r}"
        key, value = key.strip(), value.strip()
        section[key] = f"{section[key]}\n{value}" if key in section else value
    return unit


@pytest.mark.parametrize("daemon", sorted(UNITS))
def test_unit_runs_the_daemon_with_the_documented_config(daemon: str) -> None:
    """ExecStart is `pyti DAEMON --config /etc/pyti/DAEMON.toml`, valid for pyti's own parser."""
    unit = read_unit(UNITS[daemon])
    assert list(unit) == ["Unit", "Service", "Install"]
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert Path(argv[0]).name == "pyti" and argv[1] == daemon
    args = build_parser(load=daemon).parse_args(argv[1:])
    config = f"/etc/pyti/{daemon}.toml"
    assert args.config == config
    assert config in OPERATIONS.read_text(encoding="utf-8")
    assert config in EXAMPLES[daemon].read_text(encoding="utf-8")
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.parametrize("daemon", sorted(UNITS))
def test_unit_lets_the_example_paths_work(daemon: str) -> None:
    """The example's writable directories are writable under the unit's sandbox, its user exists."""
    service = read_unit(UNITS[daemon])["Service"]
    writable = service["ReadWritePaths"].split()
    writable += [f"/var/lib/{d}" for d in service.get("StateDirectory", "").split()]
    values = tomllib.loads(EXAMPLES[daemon].read_text(encoding="utf-8"))
    for key in ("data_dir", "work_dir", "image_dir"):
        if key in values:
            path = Path(values[key])
            assert any(path.is_relative_to(w) for w in writable), f"{key}={path} not writable"
    for key, value in [*values.items(), *values.get("http", {}).items()]:
        if key.endswith("_file"):
            assert value.startswith("/etc/pyti/") and value in OPERATIONS.read_text("utf-8")
    user = service["User"]
    assert re.search(rf"useradd [^\n]*\b{user}\n", OPERATIONS.read_text(encoding="utf-8"))


def test_units_give_the_daemons_time_and_devices_they_need() -> None:
    """Stop timeouts cover the grace periods, config errors are not restarted, QEMU gets KVM."""
    master = read_unit(UNITS["master"])["Service"]
    slave = read_unit(UNITS["slave"])["Service"]
    master_values = tomllib.loads(MASTER_EXAMPLE.read_text("utf-8"))
    slave_values = tomllib.loads(SLAVE_EXAMPLE.read_text("utf-8"))
    assert int(master["TimeoutStopSec"]) > master_values["drain_grace"] + 30
    # shutdown_grace, then the result acknowledgement wait (slave/daemon.py: 10 s), then VM teardown
    assert int(slave["TimeoutStopSec"]) > slave_values["shutdown_grace"] + 60
    assert slave["DeviceAllow"] == "/dev/kvm rw" and "kvm" in slave["SupplementaryGroups"]
    assert "MemoryDenyWriteExecute" not in slave  # QEMU's TCG writes and runs its translations
    for service, config_error in ((master, master_cli.EXIT_CONFIG), (slave, slave_cli.EXIT_CONFIG)):
        assert service["Restart"] == "on-failure"
        assert service["RestartPreventExitStatus"] == str(config_error)


@pytest.mark.parametrize("daemon", sorted(UNITS))
def test_unit_passes_systemd_analyze_verify(daemon: str, tmp_path: Path) -> None:
    """`systemd-analyze verify` has nothing to say (pyti's path pointed at this checkout's)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    pyti = Path(sys.executable).parent / "pyti"
    unit = tmp_path / UNITS[daemon].name
    unit.write_text(UNITS[daemon].read_text("utf-8").replace("/opt/pyti/.venv/bin/pyti", str(pyti)))
    done = subprocess.run(
        [tool, "verify", "--man=no", str(unit)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    complaints = [ln for ln in (done.stdout + done.stderr).splitlines() if unit.name in ln]
    assert done.returncode == 0 and not complaints, complaints


#: Sandboxing both units must keep (systemd.exec(5)); the master's are stricter.
SANDBOX_BOTH = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "PrivateMounts": "yes",
    "RemoveIPC": "yes",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "UMask": "0077",
}
SANDBOX_MASTER = {
    "PrivateDevices": "yes",
    "PrivateUsers": "yes",
    "ProcSubset": "pid",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallFilter": "@system-service\n~@privileged @resources",
}


@pytest.mark.parametrize("daemon", sorted(UNITS))
def test_units_keep_their_sandboxing(daemon: str) -> None:
    """Each unit has the sandboxing that fits it; the slave sees no device but /dev/kvm."""
    service = read_unit(UNITS[daemon])["Service"]
    wanted = {**SANDBOX_BOTH, **(SANDBOX_MASTER if daemon == "master" else {})}
    assert {k: service.get(k) for k in wanted} == wanted
    if daemon == "slave":
        assert service["DevicePolicy"] == "closed" and service["DeviceAllow"] == "/dev/kvm rw"
        denied = set(service["SystemCallFilter"].removeprefix("~").split())
        assert {"@privileged", "@mount", "@debug", "@module", "@raw-io"} <= denied
        assert service["SystemCallErrorNumber"] == "EPERM"
    writable = set(service["ReadWritePaths"].split())
    assert (
        writable == {"/var/lib/pyti"}
        if daemon == "master"
        else writable
        == {
            "/var/lib/pyti-slave",
            "/var/cache/pyti-slave",
        }
    )


def _security_exposure(unit: Path, tmp_path: Path) -> float:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    copy = tmp_path / unit.name
    pyti = Path(sys.executable).parent / "pyti"
    copy.write_text(unit.read_text("utf-8").replace("/opt/pyti/.venv/bin/pyti", str(pyti)))
    done = subprocess.run(
        [tool, "security", "--offline=yes", "--no-pager", str(copy)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert found, done.stdout + done.stderr
    return float(found.group(1))


@pytest.mark.parametrize("daemon", sorted(UNITS))
def test_operations_states_the_units_security_exposure(daemon: str, tmp_path: Path) -> None:
    """docs/operations.md gives the exposure `systemd-analyze security` computes for each unit."""
    name = UNITS[daemon].name
    stated = re.search(rf"^\| `{name}` \| (\d+\.\d) ", OPERATIONS.read_text("utf-8"), re.M)
    assert stated, f"docs/operations.md has no exposure row for {name}"
    assert _security_exposure(UNITS[daemon], tmp_path) == float(stated.group(1))


# ------------------------------------------------------------ CI snippets ----

SNIPPETS = [DEPLOY / "github-actions.yml", DEPLOY / "gitlab-ci.yml"]


def pyti_commands(text: str) -> list[list[str]]:
    """Every `pyti SUBCOMMAND ...` invocation in shell text, as argv (after "pyti")."""
    found = []
    commands = "submit|tail|job|jobs|slaves|image|master|slave"
    for match in re.finditer(rf"(?:^|[\s$(/])pyti ((?:{commands})\b[^|)\n]*)", text):
        argv = shlex.split(match.group(1).replace("$", "_"), comments=True)
        found.append(argv)
    return found


def shell_text(path: Path) -> str:
    """The shell code of a CI snippet (comment lines left out) or of a doc's ```sh blocks."""
    text = path.read_text("utf-8")
    if path.suffix == ".md":
        return "\n".join(re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S))
    return "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))


def test_documented_pyti_commands_parse() -> None:
    """Each pyti command in the CI snippets and the docs' shell blocks parses with pyti's parser."""
    sources = [*SNIPPETS, CI_DOC, OPERATIONS]
    commands = [argv for p in sources for argv in pyti_commands(shell_text(p))]
    assert {argv[0] for argv in commands} >= {"submit", "tail", "image", "slaves"}
    for argv in commands:
        args = ["1" if a.startswith("_") else a for a in argv]  # shell variables: a job id
        build_parser(load=args[0]).parse_args(args)


def test_ci_snippets_are_valid_yaml_using_the_ci_secrets() -> None:
    """The snippets parse as YAML, run submit then tail, and take the master and token from CI."""
    import yaml

    github = yaml.safe_load(SNIPPETS[0].read_text("utf-8"))
    job = github["jobs"]["pyti"]
    assert job["env"] == {
        "PYTI_MASTER_URL": "${{ secrets.PYTI_MASTER_URL }}",
        "PYTI_TOKEN": "${{ secrets.PYTI_TOKEN }}",
    }
    script = "\n".join(step.get("run", "") for step in job["steps"])
    assert script.index("pyti submit") < script.index("pyti tail")
    gitlab = yaml.safe_load(SNIPPETS[1].read_text("utf-8"))["pyti"]
    script = "\n".join(gitlab["script"])
    assert script.index("pyti submit") < script.index("pyti tail")
    assert gitlab["allow_failure"] == {"exit_codes": [4]}


def test_ci_doc_exit_codes_are_the_clients() -> None:
    """The exit-code table of docs/ci.md is master.client.api's mapping, code for code."""
    table: dict[str, int] = {}
    for code, outcomes in re.findall(r"^\| (\d) \| ([^|]+) \|$", CI_DOC.read_text("utf-8"), re.M):
        for outcome in re.split(r",\s*", outcomes.strip()):
            table[outcome] = int(code)
    assert {o: c for o, c in table.items() if c != EXIT_ERROR} == OUTCOME_EXIT
    assert EXIT_ERROR in table.values() and EXIT_ERROR not in OUTCOME_EXIT.values()


# ------------------------------------------------- metrics and log events ----


def _sources() -> str:
    return "\n".join(
        p.read_text("utf-8")
        for d in ("master", "slave", "protocol", "pyti")
        for p in (ROOT / d).rglob("*.py")
    )


def test_operations_metrics_are_the_registered_ones() -> None:
    """docs/operations.md names exactly the metrics the code registers (prefix pyti_)."""
    code = {
        "pyti_" + name
        for name in re.findall(r"\.(?:counter|gauge|histogram)\(\s*\"([a-z_]+)\"", _sources())
    }
    doc = set(re.findall(r"^\| `(pyti_[a-z_]+)` \|", OPERATIONS.read_text("utf-8"), re.M))
    assert doc == code


def test_operations_log_events_exist_in_the_code() -> None:
    """Every event in the log table of docs/operations.md is logged by the code."""
    text = OPERATIONS.read_text("utf-8")
    section = text[text.index("\n## Logs") : text.index("\n## Prometheus")]
    events = re.findall(r"^\| `([a-z_]+)` \| (?:master|slave|both) \|", section, re.M)
    assert len(events) >= 10
    sources = _sources()
    missing = [e for e in events if f'"{e}"' not in sources]
    assert not missing
