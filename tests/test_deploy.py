"""The deployment files of deploy/: each one checked against the code it deploys.

No container engine runs on the project's machines, so the Containerfile is
read (``dockerfile-parse``), not built; what can be run of it is run: its
HEALTHCHECK command against a real server, and the service on a read-only
root file system with only the image's writable paths (the var folder and a
tmpfs), in a mount namespace of its own.  The Kubernetes manifests are
validated offline against pinned schemas (``kubernetes-validate``) and
checked against the settings, the probes' paths and the SIGTERM drain.  The
HAProxy configuration is checked with ``haproxy -c`` (and run by
tests/test_multi_host.py), the systemd unit with ``systemd-analyze verify``
and ``systemd-analyze security``.
"""

from __future__ import annotations

import configparser
import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import requests
import yaml
from dockerfile_parse import DockerfileParser

from service.serving import GRACEFUL_TIMEOUT_S
from service.settings import Settings, env_name, load_settings
from service.worker import STOP_KEEPALIVE_LINGER_S
from tests import billing_fixtures
from tests.conftest import require, require_tool
from tests.gunicorn_process import ServedProcess, fixture_service_env, free_port, service_env
from tests.haproxy_server import HAPROXY_CFG, check_config, haproxy_environment

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CONTAINERFILE = DEPLOY / "Containerfile"
KUBERNETES = DEPLOY / "kubernetes"
UNIT = DEPLOY / "systemd" / "azersu-statement.service"
OPERATIONS = ROOT / "docs" / "operations.md"
#: The Kubernetes versions the manifests must be valid for (the schemas ship
#: with the pinned kubernetes-validate of setup.cfg's test extras).
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
SETTING_NAMES = {env_name(f.name) for f in fields(Settings)}


# --------------------------------------------------------------------------- Containerfile


@pytest.fixture(scope="module")
def containerfile() -> Iterator[DockerfileParser]:
    """Return the Containerfile as its builders read it (parsed from the file, never written)."""
    with CONTAINERFILE.open("rb") as handle:
        yield DockerfileParser(fileobj=handle)


def _stages(parser: DockerfileParser) -> list[list[dict[str, Any]]]:
    """Return the instructions of each build stage, in order."""
    stages: list[list[dict[str, Any]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _final(parser: DockerfileParser) -> list[dict[str, Any]]:
    return _stages(parser)[-1]


def _exec_form(value: str) -> list[str]:
    words = json.loads(value)
    assert isinstance(words, list) and all(isinstance(w, str) for w in words), value
    return words


def _healthcheck_command(parser: DockerfileParser) -> list[str]:
    (check,) = [i["value"] for i in parser.structure if i["instruction"] == "HEALTHCHECK"]
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    return _exec_form(command.strip())


def test_the_image_is_built_in_two_stages_from_python_3_11_slim(
    containerfile: DockerfileParser,
) -> None:
    stages = _stages(containerfile)
    assert len(stages) == 2
    arguments = dict(
        i["value"].split("=", 1) for i in containerfile.structure if i["instruction"] == "ARG"
    )
    assert re.fullmatch(r"[\w./-]+/python:3\.11-slim(-\w+)?", arguments["PYTHON_IMAGE"])
    build, runtime = (stage[0]["value"].split() for stage in stages)
    assert build == ["${PYTHON_IMAGE}", "AS", "build"]
    assert runtime == ["${PYTHON_IMAGE}", "AS", "runtime"]
    # The build stage makes wheels; the runtime stage installs them, from nothing else.
    build_runs = " ".join(i["value"] for i in stages[0] if i["instruction"] == "RUN")
    assert "pip wheel" in build_runs
    runtime_runs = " ".join(i["value"] for i in stages[1] if i["instruction"] == "RUN")
    assert "from=build,source=/wheels" in runtime_runs
    assert "--no-index --find-links /wheels" in runtime_runs
    assert not [i for i in stages[1] if i["instruction"] in ("COPY", "ADD")]


def test_no_key_database_or_var_folder_goes_into_the_image(
    containerfile: DockerfileParser,
) -> None:
    copied = []
    for instruction in containerfile.structure:
        if instruction["instruction"] in ("COPY", "ADD"):
            words = [w for w in instruction["value"].split() if not w.startswith("--")]
            copied.extend(words[:-1])
    assert copied, "the build stage copies the sources"
    for source in copied:
        assert source.rstrip("/") in ("pyproject.toml", "setup.cfg", "README.md", "service")
    # The build context: .dockerignore lets in only what is copied, never key files.
    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "*"
    let_in = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert let_in == {source.rstrip("/") for source in copied}
    for pattern in ("**/*.key", "**/*.pem", "**/*.p12", "**/*.sqlite"):
        assert pattern in ignore
    tracked = subprocess.run(
        ["git", "ls-files", *sorted(let_in)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked and not [p for p in tracked if re.search(r"\.(key|pem|p12|pfx|sqlite)$", p)]


def test_the_image_runs_serve_as_a_user_that_is_not_root(
    containerfile: DockerfileParser,
) -> None:
    final = _final(containerfile)
    (user,) = [i["value"] for i in final if i["instruction"] == "USER"]
    uid, _, gid = user.partition(":")
    # Numeric, so that Kubernetes' runAsNonRoot can check it without /etc/passwd.
    assert uid.isdigit() and gid.isdigit() and int(uid) != 0 and int(gid) != 0
    pod = _manifest("deployment.yaml")["spec"]["template"]["spec"]["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid))
    (entrypoint,) = [i["value"] for i in final if i["instruction"] == "ENTRYPOINT"]
    assert _exec_form(entrypoint) == ["azersu-statement", "serve"]
    console_scripts = configparser.ConfigParser()
    console_scripts.read(ROOT / "setup.cfg")
    assert (
        "azersu-statement = service.cli:main"
        in console_scripts["options.entry_points"]["console_scripts"]
    )
    assert containerfile.envs["AZERSU_HOST"] == "0.0.0.0"  # noqa: S104 (a container's port)


def test_the_image_environment_names_only_real_settings(containerfile: DockerfileParser) -> None:
    azersu = {k: v for k, v in containerfile.envs.items() if k.startswith("AZERSU_")}
    assert set(azersu) <= SETTING_NAMES, set(azersu) - SETTING_NAMES
    # The keys are mounted where the manifests mount them, not baked in.
    config = _manifest("configmap.yaml")["data"]
    for name in ("AZERSU_SIGN_KEY", "AZERSU_SIGN_CERT", "AZERSU_TRUST_CA", "AZERSU_VAR_DIR"):
        assert azersu[name] == config[name]
    assert load_settings(azersu).var_dir == "/var/lib/azersu-statement"


def test_the_healthcheck_command_asks_a_real_server(
    containerfile: DockerfileParser, billing_db: str, pki: dict[str, Path], tmp_path: Path
) -> None:
    command = _healthcheck_command(containerfile)
    assert command[0] == "python"
    command[0] = sys.executable  # the image's python is its virtualenv's
    assert "/healthz" in command[-1]
    server = ServedProcess(fixture_service_env(pki, billing_db, tmp_path / "var"), tmp_path / "log")
    try:
        env = {**os.environ, "AZERSU_PORT": str(server.port)}
        assert subprocess.run(command, env=env, capture_output=True, timeout=30).returncode == 0
    finally:
        assert server.stop() == 0
    # Nothing listens there any more: the check fails.
    assert subprocess.run(command, env=env, capture_output=True, timeout=30).returncode != 0


@pytest.fixture
def read_only_root() -> Iterator[Path]:
    """A folder outside /tmp for a service whose root file system is read-only."""
    unshare = require_tool(
        "unshare", "util-linux", "the read-only root test runs serve in a mount namespace"
    )
    probe = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "true"], capture_output=True
    )
    require(
        None
        if probe.returncode == 0
        else f"no mount namespace here: {probe.stderr.decode(errors='replace').strip()}",
        "the read-only root test",
    )
    folder = Path(tempfile.mkdtemp(prefix="azersu-read-only-", dir="/var/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _serve_read_only(folder: Path, env: dict[str, str], port: int, writable: list[Path]) -> Any:
    """Start serve with / read-only except ``writable`` (bind mounts) and a tmpfs as TMPDIR."""
    scratch = folder / "tmpfs"
    scratch.mkdir()
    script = "set -e\n"
    for path in writable:
        script += f"mount --bind {shlex.quote(str(path))} {shlex.quote(str(path))}\n"
    script += f"mount -t tmpfs -o size=64m,mode=1777 tmpfs {shlex.quote(str(scratch))}\n"
    script += "mount -o remount,bind,ro /\n"
    script += f"exec {shlex.quote(sys.executable)} -m service serve --port {port}\n"
    with (folder / "serve.log").open("wb") as log:
        return subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            env={**env, "TMPDIR": str(scratch)},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _wait_for(url: str, process: Any, timeout_s: float = 40) -> requests.Response | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            return requests.get(url, timeout=2)
        except requests.RequestException:
            time.sleep(0.1)
    return None


@pytest.mark.slow
def test_serve_runs_on_a_read_only_root_with_only_the_var_folder_and_tmp_writable(
    read_only_root: Path, pki: dict[str, Path], sign: Any
) -> None:
    folder = read_only_root
    billing = folder / "billing.sqlite"
    billing_fixtures.create_billing_db(f"sqlite:///{billing}")
    keys = folder / "keys"
    keys.mkdir()
    for name in ("service.key", "service.pem", "ca.pem", "portal.pem"):
        shutil.copy(pki[name], keys / name)
    var = folder / "var"
    var.mkdir()
    env = service_env(
        {name: keys / name for name in ("service.key", "service.pem", "ca.pem", "portal.pem")},
        AZERSU_BILLING_URL=f"sqlite:///{billing}",
        AZERSU_REPORT_PERIOD=billing_fixtures.REPORT_PERIOD,
        AZERSU_VAR_DIR=str(var),
        AZERSU_WORKERS="2",
    )
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    port = free_port()
    process = _serve_read_only(folder, env, port, writable=[var])
    try:
        ready = _wait_for(f"http://127.0.0.1:{port}/readyz", process)
        log = (folder / "serve.log").read_text(errors="replace")
        assert ready is not None and ready.status_code == 200, log[-3000:]
        from tests.test_app import HEADERS, envelope, request_body

        answer = requests.post(
            f"http://127.0.0.1:{port}/soap",
            data=sign(envelope(request_body())),
            headers=HEADERS,
            timeout=30,
        )
        assert answer.status_code == 200 and b"<tns:Status>OK</tns:Status>" in answer.content
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert 'azersu_requests_total{outcome="OK"} 1.0' in metrics
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0
    # What it wrote went to the var folder: the audit (and replay) store and the metrics.
    assert (var / "audit.sqlite").is_file()
    assert (var / "metrics").is_dir()

    # The control: the var folder on the read-only root, and the start is refused.
    (folder / "tmpfs").rmdir()
    process = _serve_read_only(folder, env, free_port(), writable=[])
    assert process.wait(timeout=60) != 0
    assert "Read-only file system" in (folder / "serve.log").read_text(errors="replace")


# --------------------------------------------------------------------------- Kubernetes


def _documents(name: str) -> list[dict[str, Any]]:
    with (KUBERNETES / name).open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def _manifest(name: str) -> dict[str, Any]:
    (document,) = _documents(name)
    return document


def _all_manifests() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in sorted(KUBERNETES.glob("*.yaml"))
        for doc in _documents(path.name)
    ]


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_kubernetes_manifests_are_the_expected_kinds() -> None:
    kinds = sorted((doc["apiVersion"], doc["kind"]) for _, doc in _all_manifests())
    assert kinds == [
        ("apps/v1", "Deployment"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Secret"),
        ("v1", "Secret"),
        ("v1", "Service"),
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_manifests_are_valid_against_the_pinned_schemas(version: str) -> None:
    for name, document in _all_manifests():
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {exc.message}")


@pytest.mark.parametrize(
    "mutation",
    [
        lambda d: _container(d).__setitem__("readinesProbe", _container(d)["readinessProbe"]),
        lambda d: _container(d)["resources"]["requests"].__setitem__("cpu", {"cores": 2}),
        lambda d: d["spec"]["template"]["spec"].__setitem__("terminationGracePeriodSeconds", "45"),
    ],
    ids=["misspelt-field", "wrong-type", "string-for-integer"],
)
def test_the_schema_check_refuses_a_broken_deployment(mutation: Any) -> None:
    deployment = copy.deepcopy(_manifest("deployment.yaml"))
    mutation(deployment)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_probes_ask_the_service_paths_that_answer(live_server: Any) -> None:
    container = _container(_manifest("deployment.yaml"))
    port_names = {p["name"] for p in container["ports"]}
    for probe, path in (
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
    ):
        assert container[probe]["httpGet"]["path"] == path
        assert container[probe]["httpGet"]["port"] in port_names
        assert requests.get(live_server.base_url + path, timeout=10).status_code == 200
    # The HAProxy of deploy/haproxy checks the same readiness path.
    assert re.search(r"^\s*option httpchk GET /readyz\s*$", HAPROXY_CFG.read_text(), re.M)


def test_the_pod_is_non_root_read_only_and_bounded() -> None:
    deployment = _manifest("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]
    # Writable: the var folder and /tmp, both volumes of the pod; the keys read-only.
    config = _manifest("configmap.yaml")["data"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {config["AZERSU_VAR_DIR"], "/tmp"}
    for mount in container["volumeMounts"]:
        if "secret" in volumes[mount["name"]]:
            assert mount["readOnly"] is True
    # The HPA sets the replicas, two at least.
    assert "replicas" not in deployment["spec"]


def test_termination_grace_covers_the_sigterm_drain() -> None:
    deployment = _manifest("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    command = _container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop_s = float(command[1])
    needed = pre_stop_s + GRACEFUL_TIMEOUT_S + STOP_KEEPALIVE_LINGER_S
    assert needed <= pod["terminationGracePeriodSeconds"] <= needed + 15


def test_the_configmap_holds_real_settings_that_load() -> None:
    config = _manifest("configmap.yaml")["data"]
    assert set(config) <= SETTING_NAMES, set(config) - SETTING_NAMES
    assert all(isinstance(value, str) for value in config.values())
    # As a pod would see them, with the Secret's store URLs and a registered caller.
    stores = {
        "AZERSU_BILLING_URL": "oracle+oracledb://u:p@billing:1521/?service_name=BILLING",
        "AZERSU_AUDIT_URL": "postgresql://u:p@audit:5432/audit",
        "AZERSU_REPLAY_URL": "redis://redis:6379/0",
    }
    settings = load_settings({**config, **stores, "AZERSU_TRUSTED_CLIENTS": "ab" * 32})
    assert settings.host == "0.0.0.0"  # noqa: S104
    assert settings.port == _container(_manifest("deployment.yaml"))["ports"][0]["containerPort"]
    assert settings.resolved_public_url.startswith("https://")


def test_the_secrets_hold_no_data_and_name_what_the_pod_mounts() -> None:
    secrets = {doc["metadata"]["name"]: doc for doc in _documents("secrets.yaml")}
    for secret in secrets.values():
        assert not secret.get("data") and not secret.get("stringData"), secret
    text = (KUBERNETES / "secrets.yaml").read_text(encoding="utf-8")
    # The documented `kubectl create secret generic NAME ...` command of each Secret.
    commands = {
        chunk.split()[0]: chunk for chunk in text.split("kubectl create secret generic ")[1:]
    }
    assert set(commands) == set(secrets)
    deployment = _manifest("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    config = _manifest("configmap.yaml")["data"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    mounted_files = set()
    for volume in pod["volumes"]:
        if "secret" not in volume:
            continue
        name = volume["secret"]["secretName"]
        assert name in secrets
        for item in volume["secret"]["items"]:
            assert f"--from-file={item['key']}=" in commands[name], (name, item)
            mounted_files.add(f"{mounts[volume['name']]}/{item['path']}")
    assert {config["AZERSU_SIGN_KEY"], config["AZERSU_SIGN_CERT"], config["AZERSU_TRUST_CA"]} == (
        mounted_files
    )
    for variable in container["env"]:
        reference = variable["valueFrom"]["secretKeyRef"]
        assert variable["name"] == reference["key"] and reference["key"] in SETTING_NAMES
        assert reference["name"] in secrets
        assert f"--from-literal={reference['key']}=" in commands[reference["name"]]


def test_service_pdb_and_hpa_select_the_deployment() -> None:
    deployment = _manifest("deployment.yaml")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = _manifest("service.yaml")
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {
        p["name"] for p in _container(deployment)["ports"]
    }
    pdb = _manifest("pdb.yaml")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = _manifest("hpa.yaml")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2 > pdb["spec"]["maxUnavailable"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # The image the manifests name is this version's.
    version = configparser.ConfigParser()
    version.read(ROOT / "setup.cfg")
    image = _container(deployment)["image"]
    assert image.rsplit(":", 1)[1] == version["metadata"]["version"]


# --------------------------------------------------------------------------- HAProxy


def test_haproxy_accepts_the_configuration_without_a_warning() -> None:
    env = haproxy_environment(["10.0.0.11:8080", "10.0.0.12:8080", "10.0.0.13:8080"])
    result = check_config(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout


def test_haproxy_refuses_to_start_without_a_backend() -> None:
    result = check_config(haproxy_environment([]))
    assert result.returncode != 0
    assert "'server' expects <name> and <addr>" in result.stdout + result.stderr


def test_haproxy_checks_readiness_and_bounds_slow_clients() -> None:
    text = HAPROXY_CFG.read_text(encoding="utf-8")
    for line in (
        r"option httpchk GET /readyz",
        r"http-check expect status 200",
        r"timeout http-request \d+s",
        r"option http-buffer-request",
        r"retry-on conn-failure",
        r"http-request deny deny_status 404 unless \{ path /soap \}",
        r"http-request deny deny_status 404 unless \{ path /verify /verify.json /verify.css \}",
        r"option forwardfor",
    ):
        assert re.search(rf"^\s*{line}\s*$", text, re.M), line


# --------------------------------------------------------------------------- systemd


def _unit_entries() -> dict[str, list[str]]:
    """Return the unit's settings (a name may repeat), section names dropped."""
    entries: dict[str, list[str]] = {}
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "[")):
            continue
        key, _, value = line.partition("=")
        entries.setdefault(key, []).append(value)
    return entries


def test_the_unit_is_sandboxed_and_drains_like_the_service() -> None:
    unit = _unit_entries()
    for key, value in (
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("KillSignal", "SIGTERM"),
        ("KillMode", "mixed"),
        ("CapabilityBoundingSet", ""),
    ):
        assert unit[key] == [value], key
    assert unit["User"] == ["azersu-statement"] and unit["User"] != ["root"]
    assert unit["EnvironmentFile"] == ["/etc/azersu-statement/azersu-statement.env"]
    (var_dir,) = [v.split("=", 1)[1] for v in unit["Environment"] if v.startswith("AZERSU_VAR")]
    assert unit["ReadWritePaths"] == [var_dir]
    assert unit["ExecStart"] == ["/opt/azersu-statement/bin/azersu-statement serve"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    stop_s = float(unit["TimeoutStopSec"][0])
    assert GRACEFUL_TIMEOUT_S + STOP_KEEPALIVE_LINGER_S <= stop_s <= GRACEFUL_TIMEOUT_S + 15
    for key in unit:
        if key.startswith("AZERSU_"):
            assert key in SETTING_NAMES


def _unit_here(folder: Path, text: str | None = None) -> Path:
    """Write the unit with its ExecStart pointing at this checkout's azersu-statement.

    ``systemd-analyze verify`` checks that the program exists; the unit's
    /opt/azersu-statement is where an installation puts it.
    """
    program = Path(sys.executable).parent / "azersu-statement"
    assert program.exists()
    text = (text or UNIT.read_text(encoding="utf-8")).replace(
        "/opt/azersu-statement/bin/", f"{program.parent}/"
    )
    path = folder / UNIT.name
    path.write_text(text, encoding="utf-8")
    return path


def _systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    program = require_tool("systemd-analyze", "systemd", "the systemd unit is checked with it")
    return subprocess.run([program, *args], capture_output=True, text=True, timeout=60, check=False)


def test_systemd_analyze_verifies_the_unit_without_a_remark(tmp_path: Path) -> None:
    result = _systemd_analyze("verify", str(_unit_here(tmp_path)))
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )
    # The check sees a mistake: a misspelt value is a remark.
    broken = UNIT.read_text(encoding="utf-8").replace(
        "ProtectSystem=strict", "ProtectSystem=stricter"
    )
    result = _systemd_analyze("verify", str(_unit_here(tmp_path, broken)))
    assert "protect system value, ignoring: stricter" in result.stdout + result.stderr


def test_systemd_rates_the_sandbox_ok(tmp_path: Path) -> None:
    result = _systemd_analyze("security", "--offline=yes", str(_unit_here(tmp_path)))
    match = re.search(r"Overall exposure level for [\w.-]+: (\d+\.\d) (\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure, verdict = float(match.group(1)), match.group(2)
    assert exposure <= 2.0 and verdict == "OK", result.stdout


# --------------------------------------------------------------------------- docs


def test_the_operations_page_names_every_deployment_file_and_real_metrics() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            assert str(path.relative_to(ROOT)) in text, path
    from service.metrics import Metrics

    suffixes = {"counter": ("_total",), "histogram": ("", "_bucket", "_count", "_sum")}
    exported = {
        metric.name + suffix
        for metric in Metrics().registry.collect()
        for suffix in suffixes.get(metric.type, ("",))
    }
    named = set(re.findall(r"`(azersu_[a-z_]+)", text))
    assert named and named <= exported, named - exported
