"""deploy/: the Dockerfile and the Kubernetes manifests must stay in step with the CLI and the package.

Kubernetes and Docker are not available on the build machines, so these check the parts that drift: the YAML
parses into the expected kinds, every container runs a real `pintext` subcommand with options it really has,
and the volumes, ConfigMap and Secret the pods name exist in the manifests.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
import typer.main
import yaml

from pintext.cli import app

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
CLI = typer.main.get_command(app)


def documents() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return docs


def pod_specs() -> list[tuple[str, dict]]:
    specs = []
    for doc in documents():
        if doc["kind"] == "Job":
            specs.append((doc["metadata"]["name"], doc["spec"]["template"]["spec"]))
        elif doc["kind"] == "CronJob":
            specs.append((doc["metadata"]["name"], doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return specs


def containers() -> list[tuple[str, dict]]:
    return [(f"{name}/{c['name']}", c) for name, spec in pod_specs()
            for c in spec.get("initContainers", []) + spec["containers"]]


def resolve(argv: list[str]):
    """The Typer command `pintext ARGV` runs, and the arguments left for it."""
    command, rest = CLI, list(argv)
    while hasattr(command, "commands"):  # a group: the next word must be one of its subcommands
        assert rest, f"`pintext {' '.join(argv)}` names no subcommand"
        name = rest.pop(0)
        assert name in command.commands, f"`{name}` is not a pintext subcommand (have {sorted(command.commands)})"
        command = command.commands[name]
    return command, rest


@pytest.mark.parametrize("where,container", containers(), ids=[where for where, _ in containers()])
def test_every_container_runs_a_real_pintext_command_with_real_options(where, container):
    argv = container["command"] + container.get("args", [])
    assert argv[0] == "pintext", where
    command, rest = resolve(argv[1:])
    options = {opt: param for param in command.params if param.param_type_name == "option"
               for opt in param.opts + param.secondary_opts}
    arguments = [param for param in command.params if param.param_type_name == "argument"]
    given, positional, i = {}, [], 0
    while i < len(rest):
        token = rest[i]
        if token.startswith("--"):
            assert token in options, f"{where}: `pintext {command.name}` has no option {token}"
            param = options[token]
            if param.is_flag:
                given[param.name] = True
                i += 1
            else:
                assert i + 1 < len(rest) and not rest[i + 1].startswith("--"), f"{where}: {token} needs a value"
                given[param.name] = rest[i + 1]
                i += 2
        else:
            positional.append(token)
            i += 1
    assert len(positional) == len(arguments), f"{where}: {positional} for arguments {[a.name for a in arguments]}"
    for param in command.params:
        if param.param_type_name == "option" and param.required:
            assert param.name in given, f"{where}: required option {param.opts[0]} missing"
        value = given.get(param.name)
        if isinstance(value, str) and getattr(param, "min", None) is not None:
            assert int(value) >= param.min, f"{where}: {param.opts[0]} {value} below {param.min}"


def test_the_manifests_cover_training_and_ingest():
    commands = {tuple(container["command"][:2]) for _, container in containers()}
    assert commands == {("pintext", "pairs"), ("pintext", "train"), ("pintext", "ingest")}
    train = dict(pod_specs())["pintext-train"]
    pairs_out = train["initContainers"][0]["command"]
    train_in = train["containers"][0]["command"]
    assert pairs_out[pairs_out.index("--out") + 1] == train_in[train_in.index("--pairs") + 1]
    model_out = train_in[train_in.index("--out") + 1]
    for name in ("pintext-ingest", "pintext-reingest"):
        ingest = dict(pod_specs())[name]["containers"][0]["command"]
        assert ingest[ingest.index("--model") + 1] == model_out


def test_a_mistyped_option_is_caught():
    command, rest = resolve(["ingest", "x.jsonl", "--modle", "/data/model"])
    assert "--modle" not in {opt for param in command.params for opt in getattr(param, "opts", [])}
    with pytest.raises(AssertionError, match="not a pintext subcommand"):
        resolve(["ingset", "x.jsonl"])


def test_volumes_config_and_env_refer_to_declared_objects():
    docs = documents()
    claims = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "PersistentVolumeClaim"}
    configmaps = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "ConfigMap"}
    secrets = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Secret"}
    for name, spec in pod_specs():
        assert spec["restartPolicy"] == "Never"
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        assert {v["persistentVolumeClaim"]["claimName"] for v in volumes.values()} <= claims
        for container in spec.get("initContainers", []) + spec["containers"]:
            assert {mount["name"] for mount in container["volumeMounts"]} <= set(volumes)
            env = set()
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    env |= set(configmaps[source["configMapRef"]["name"]]["data"])
                if "secretRef" in source:
                    env |= set(secrets[source["secretRef"]["name"]]["stringData"])
            for token in container["command"]:
                for var in re.findall(r"\$\((\w+)\)", token):
                    assert var in env, f"{name}: $({var}) is not set"
            if container["command"][1] == "ingest":
                assert {"OPENSEARCH_URL", "OPENSEARCH_USER", "OPENSEARCH_PASSWORD"} <= env


def test_dockerfile_installs_real_extras_and_runs_pintext():
    text = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    extras = re.search(r'^ARG EXTRAS="([^"]*)"', text, re.M).group(1).split(",")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert set(extras) <= set(declared["optional-dependencies"])
    assert {"data", "train"} <= set(extras)  # pairs needs datasets, train needs torch
    assert 'ENTRYPOINT ["pintext"]' in text
    for source in re.findall(r"^COPY (\S+)", text, re.M):
        assert (ROOT / source).exists(), source
    images = {container["image"] for _, container in containers()}
    assert len(images) == 1
