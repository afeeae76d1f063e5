"""Static checks for the deployment files (docker-compose.yml, Dockerfile, .dockerignore).

No Docker engine is needed: the files are parsed and the behaviour a user relies
on (replica-set MongoDB that becomes healthy, app waiting for it, non-root image
running the ``custscore`` CLI) is asserted on the parsed structure.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    svcs = compose.get("services")
    assert isinstance(svcs, dict) and svcs, "docker-compose.yml must define services"
    return svcs


def _as_argv(value: str | list) -> list[str]:
    """Normalise a compose ``command``/``test`` (string or list) to argv."""
    if isinstance(value, str):
        return shlex.split(value)
    assert isinstance(value, list)
    return [str(v) for v in value]


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, _, val = str(item).partition("=")
            out[key] = val
        return out
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _named_volume_sources(service: dict) -> list[str]:
    """Named volumes (not bind mounts) referenced by a service."""
    names = []
    for vol in service.get("volumes") or []:
        if isinstance(vol, str):
            parts = vol.split(":")
            if len(parts) < 2:
                continue  # anonymous volume ("/path")
            source = parts[0]
            if source.startswith(("/", ".", "~", "$")):
                continue  # bind mount
            names.append(source)
        elif isinstance(vol, dict) and vol.get("type", "volume") == "volume" and vol.get("source"):
            names.append(vol["source"])
    return names


def _volume_targets(service: dict) -> dict[str, str]:
    """Map container path -> named volume for a service."""
    targets = {}
    for vol in service.get("volumes") or []:
        if isinstance(vol, str):
            parts = vol.split(":")
            if len(parts) >= 2:
                targets[parts[1]] = parts[0]
        elif isinstance(vol, dict):
            targets[vol.get("target")] = vol.get("source")
    return targets


def _healthcheck_script(service: dict) -> str:
    hc = service.get("healthcheck") or {}
    test = hc.get("test")
    if isinstance(test, list):
        return " ".join(str(t) for t in test)
    return str(test or "")


def _duration_seconds(value: str | int | float) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    total = 0.0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    matches = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    assert matches and "".join(n + u for n, u in matches) == value, f"bad duration {value!r}"
    for num, unit in matches:
        total += float(num) * units[unit]
    return total


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """Minimal Dockerfile parser -> [(INSTRUCTION, args)].

    Joins backslash continuation lines, drops comments/blank lines (including
    comment lines inside a continuation, as BuildKit does).
    """
    instructions: list[tuple[str, str]] = []
    buf: list[str] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        line = " ".join(part for part in buf if part)
        buf = []
        instr, _, args = line.partition(" ")
        instructions.append((instr.upper(), args.strip()))
    if buf:
        line = " ".join(part for part in buf if part)
        instr, _, args = line.partition(" ")
        instructions.append((instr.upper(), args.strip()))
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final_stage(dockerfile: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Instructions of the last build stage (the image that actually runs)."""
    froms = [i for i, (instr, _) in enumerate(dockerfile) if instr == "FROM"]
    assert froms, "Dockerfile has no FROM"
    return dockerfile[froms[-1] :]


def _env_from_args(args: str) -> dict[str, str]:
    tokens = shlex.split(args)
    if tokens and "=" not in tokens[0]:  # legacy "ENV KEY value"
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(tok.split("=", 1) for tok in tokens)


def _is_pip_install(args: str) -> bool:
    return re.search(r"\bpip3?\s+install\b|\bpython3?\s+-m\s+pip\s+install\b", args) is not None


# --------------------------------------------------------------------------
# docker-compose.yml
# --------------------------------------------------------------------------


def test_compose_has_no_obsolete_version_key(compose: dict) -> None:
    assert "version" not in compose


def test_mongo_image_and_replica_set_command(services: dict) -> None:
    mongo = services["mongo"]
    assert mongo["image"] == "mongo:8.0"
    argv = _as_argv(mongo["command"])
    assert "--replSet" in argv
    assert argv[argv.index("--replSet") + 1] == "rs0"
    assert "--bind_ip_all" in argv


def test_mongo_publishes_port_and_persists_data(services: dict) -> None:
    mongo = services["mongo"]
    ports = [str(p if not isinstance(p, dict) else p.get("target")) for p in mongo.get("ports", [])]
    assert any(p.split(":")[-1].split("/")[0] == "27017" for p in ports), ports
    targets = _volume_targets(mongo)
    assert "/data/db" in targets
    assert targets["/data/db"] in _named_volume_sources(mongo), "/data/db must be a named volume"


def test_mongo_healthcheck_initiates_replica_set_with_mongosh(services: dict) -> None:
    hc = services["mongo"].get("healthcheck")
    assert isinstance(hc, dict), "mongo needs a healthcheck"
    test = hc["test"]
    assert isinstance(test, (list, str))
    if isinstance(test, list):
        assert test[0] in ("CMD", "CMD-SHELL")
        assert any("mongosh" in str(t) for t in test[1:])
    else:
        assert "mongosh" in test
    script = _healthcheck_script(services["mongo"])
    assert "rs.initiate" in script
    # The replica set name and member host must agree with the mongod flag and
    # the compose service name, or the app can never reach the primary.
    assert re.search(r"_id:\s*['\"]rs0['\"]", script), script
    assert re.search(r"host:\s*['\"]mongo:27017['\"]", script), script


def test_mongo_healthcheck_only_healthy_when_primary(services: dict) -> None:
    script = _healthcheck_script(services["mongo"])
    # Initiating alone returns ok:1 long before the node is PRIMARY; the check
    # must gate on the node actually being the writable primary.
    assert re.search(r"isWritablePrimary|ismaster|PRIMARY|myState", script), script
    assert re.search(r"quit\(\s*[1-9]|exit\(\s*[1-9]|throw\b", script), (
        "healthcheck must exit non-zero while the node is not PRIMARY"
    )


def test_mongo_healthcheck_timings(services: dict) -> None:
    hc = services["mongo"]["healthcheck"]
    for key in ("interval", "timeout", "retries", "start_period"):
        assert key in hc, f"healthcheck.{key} missing"
    assert _duration_seconds(hc["interval"]) > 0
    assert _duration_seconds(hc["timeout"]) > 0
    assert _duration_seconds(hc["start_period"]) > 0
    assert int(hc["retries"]) >= 3
    # Enough total budget for mongod startup + replica set election.
    budget = _duration_seconds(hc["start_period"]) + int(hc["retries"]) * _duration_seconds(
        hc["interval"]
    )
    assert budget >= 30


def test_app_builds_locally_and_waits_for_healthy_mongo(services: dict) -> None:
    app = services["app"]
    build = app["build"]
    assert build == "." or (isinstance(build, dict) and build.get("context") in (".", "./"))
    depends = app["depends_on"]
    assert isinstance(depends, dict), "depends_on must use the long form with a condition"
    assert depends["mongo"]["condition"] == "service_healthy"
    assert app.get("restart") == "unless-stopped"


def test_app_mongo_uri_targets_replica_set_service(services: dict) -> None:
    env = _environment(services["app"])
    uri = env["CUSTSCORE_MONGO_URI"]
    parts = urlsplit(uri)
    assert parts.scheme == "mongodb"
    hosts = parts.netloc.rsplit("@", 1)[-1].split(",")
    assert hosts and all(h.split(":")[0] == "mongo" for h in hosts), hosts
    query = parse_qs(parts.query)
    assert query.get("replicaSet") == ["rs0"]
    # Inside the compose network the replica-set hostname resolves, so the app
    # must NOT bypass discovery.
    assert query.get("directConnection", ["false"]) != ["true"]


def test_no_model_volume_is_shared_between_services(services: dict) -> None:
    # models live in the database (GridFS); each service's home is only a local cache
    for name in ("app", "api", "train"):
        env = _environment(services[name])
        assert env["CUSTSCORE_HOME"] == "/data/custscore"
        assert "/data/custscore" not in _volume_targets(services[name]), name
    sources = [src for svc in services.values() for src in _named_volume_sources(svc)]
    assert len(sources) == len(set(sources)), f"a named volume is shared: {sources}"


def test_worker_api_and_train_need_only_the_same_database(services: dict) -> None:
    uris = {name: _environment(services[name])["CUSTSCORE_MONGO_URI"] for name in ("app", "api", "train")}
    assert len(set(uris.values())) == 1, uris
    for name in ("app", "api", "train"):
        assert services[name]["depends_on"]["mongo"]["condition"] == "service_healthy"


def test_app_command_is_a_custscore_subcommand(services: dict) -> None:
    command = services["app"]["command"]
    assert isinstance(command, list), "app command must be exec form (args to the custscore entrypoint)"
    assert command[:2] == ["score", "--watch"], command  # the scorer worker
    assert command[command.index("--metrics-port") + 1] == "9108"
    # The entrypoint supplies "custscore"; repeating it would break the CLI.
    assert command[0] != "custscore"


def test_api_serves_on_all_interfaces_with_a_health_check(services: dict) -> None:
    api = services["api"]
    assert api["command"][:1] == ["serve"] and api["command"][api["command"].index("--host") + 1] == "0.0.0.0"
    assert "8000:8000" in api["ports"]
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    assert "/metrics" in " ".join(services["app"]["healthcheck"]["test"])


def test_train_is_a_one_shot_profile(services: dict) -> None:
    train = services["train"]
    assert train["profiles"] == ["train"] and train["command"][:1] == ["train"]
    assert train.get("restart") == "no"


def test_prometheus_scrapes_worker_and_api_after_they_are_healthy(services: dict) -> None:
    import yaml

    prom = services["prometheus"]
    assert {d: c["condition"] for d, c in prom["depends_on"].items()} == {"app": "service_healthy",
                                                                         "api": "service_healthy"}
    mount = next(v for v in prom["volumes"] if v.endswith(":/etc/prometheus/prometheus.yml:ro"))
    config = yaml.safe_load((COMPOSE_FILE.parent / mount.split(":")[0]).read_text(encoding="utf-8"))
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {"app:9108", "api:8000"}


def test_named_volumes_declared_at_top_level(compose: dict, services: dict) -> None:
    declared = set((compose.get("volumes") or {}).keys())
    used = {name for svc in services.values() for name in _named_volume_sources(svc)}
    assert used, "expected named volumes for mongo and app data"
    assert used <= declared, f"undeclared named volumes: {sorted(used - declared)}"


def test_directconnection_documented_for_external_clients() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    assert "directConnection=true" in comments


# --------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------


def test_dockerfile_parser_joins_continuations() -> None:
    parsed = parse_dockerfile("FROM x\n# c\nRUN a \\\n    # inner\n    && b\nUSER u\n")
    assert parsed == [("FROM", "x"), ("RUN", "a && b"), ("USER", "u")]


def test_dockerfile_base_image(final_stage: list[tuple[str, str]]) -> None:
    image = final_stage[0][1].split()[0]
    assert image.startswith("python:3.11"), image


def test_dockerfile_python_env(final_stage: list[tuple[str, str]]) -> None:
    env: dict[str, str] = {}
    for instr, args in final_stage:
        if instr == "ENV":
            env.update(_env_from_args(args))
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("CUSTSCORE_HOME") == "/data/custscore"


def test_dockerfile_installs_package_with_pip(final_stage: list[tuple[str, str]]) -> None:
    installs = [args for instr, args in final_stage if instr == "RUN" and _is_pip_install(args)]
    assert installs, "no RUN pip install in the final stage"
    assert any(re.search(r"install\s+(?:--\S+\s+)*\.(\s|$|\[)", a) for a in installs), installs
    assert all("--no-cache-dir" in a for a in installs)


def test_dockerfile_runs_as_non_root(final_stage: list[tuple[str, str]]) -> None:
    last_install = max(
        i for i, (instr, args) in enumerate(final_stage) if instr == "RUN" and _is_pip_install(args)
    )
    users = [(i, args.split()[0]) for i, (instr, args) in enumerate(final_stage) if instr == "USER"]
    assert users, "no USER instruction"
    last_index, last_user = users[-1]
    assert last_index > last_install, "USER must come after the package install"
    assert last_user.split(":")[0] not in ("root", "0"), last_user


def test_dockerfile_entrypoint_and_cmd_exec_form(final_stage: list[tuple[str, str]]) -> None:
    entrypoints = [args for instr, args in final_stage if instr == "ENTRYPOINT"]
    assert entrypoints, "no ENTRYPOINT"
    assert json.loads(entrypoints[-1]) == ["custscore"]
    cmds = [args for instr, args in final_stage if instr == "CMD"]
    assert cmds, "no CMD"
    assert json.loads(cmds[-1]) == ["status"]


def _copy_sources(dockerfile: list[tuple[str, str]]) -> list[str]:
    sources = []
    for instr, args in dockerfile:
        if instr not in ("COPY", "ADD"):
            continue
        tokens = json.loads(args) if args.startswith("[") else shlex.split(args)
        if any(t.startswith("--from") for t in tokens):
            continue  # copied from another stage, not the build context
        tokens = [t for t in tokens if not t.startswith("--")]
        sources.extend(tokens[:-1])
    return sources


def test_dockerfile_copies_package_sources(dockerfile: list[tuple[str, str]]) -> None:
    sources = {s.rstrip("/") for s in _copy_sources(dockerfile)}
    assert {"pyproject.toml", "README.md", "custscore"} <= sources, sources


def test_dockerfile_copy_sources_exist(dockerfile: list[tuple[str, str]]) -> None:
    sources = _copy_sources(dockerfile)
    assert sources
    missing = [s for s in sources if not (REPO_ROOT / s).exists()]
    assert not missing, f"COPY sources missing from the build context: {missing}"


# --------------------------------------------------------------------------
# .dockerignore
# --------------------------------------------------------------------------


def _dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat.lstrip("!").strip("/")
        candidates = [pat]
        if pat.startswith("**/"):
            candidates.append(pat[3:])
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates):
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".venv",
        ".git",
        ".custscore",
        ".pytest_cache",
        "__pycache__",
        "custscore/__pycache__",
        "custscore/__pycache__/cli.cpython-311.pyc",
        "scores.sqlite",
        "data/scores.sqlite",
    ],
)
def test_dockerignore_excludes_local_state(path: str) -> None:
    assert _ignored(path, _dockerignore_patterns()), path


def test_dockerignore_keeps_copy_sources(dockerfile: list[tuple[str, str]]) -> None:
    patterns = _dockerignore_patterns()
    for source in _copy_sources(dockerfile):
        src = source.rstrip("/")
        assert not _ignored(src, patterns), f"{source} is COPY'd but excluded by .dockerignore"
    assert not _ignored("custscore/cli/__init__.py", patterns)
