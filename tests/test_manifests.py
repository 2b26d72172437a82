"""deploy/ on paper. No Kubernetes cluster can run here: the manifests are checked offline
against Kubernetes' schemas (strictly: an unknown field fails) and against what they name
of Bascule, as is every setting and command the other files of deploy/ name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml

from bascule import config
from bascule.cli import main
from bascule.proxies import Recipe, follow_command, write
from deploy.image import TAG

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CONTAINERFILE = (DEPLOY / "Containerfile").read_text()
# The newest Kubernetes whose schemas kubernetes-validate (pinned in pyproject.toml) holds.
KUBERNETES = "1.37"
MANIFESTS = {
    f"{path.name}:{doc['kind']}": doc
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text())
}
SETTINGS = {field.metadata["env"] for field in config.fields()}


def kind(name: str, file: str = "") -> dict[str, Any]:
    """The one manifest of kind ``name``: in ``file``, or else in the server's files."""
    files = [file] if file else ["bascule.yaml", "db-upgrade.yaml"]
    (found,) = (MANIFESTS[f"{path}:{name}"] for path in files if f"{path}:{name}" in MANIFESTS)
    return found


def pod(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]
    return spec


@pytest.mark.parametrize("name", MANIFESTS)
def test_every_manifest_is_valid_kubernetes(name: str):
    kubernetes_validate.validate(MANIFESTS[name], KUBERNETES, strict=True)


def test_the_manifests_are_the_deployment_its_service_and_the_upgrade_job():
    assert sorted(MANIFESTS) == [
        "bascule.yaml:Deployment",
        "bascule.yaml:Service",
        "db-upgrade.yaml:Job",
        "proxy.yaml:Deployment",
        "proxy.yaml:Service",
    ]


@pytest.mark.parametrize("name", ["Deployment", "Job"])
def test_each_pod_runs_the_image_as_its_user_on_a_read_only_root(name: str):
    spec = pod(kind(name))["spec"]
    user = re.search(r"^USER (\d+):(\d+)$", CONTAINERFILE, re.M)
    assert user
    assert spec["securityContext"]["runAsUser"] == int(user.group(1))
    assert spec["securityContext"]["runAsGroup"] == int(user.group(2))
    (container,) = spec["containers"]
    assert container["image"] == TAG
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # Through the image's entrypoint (tini): `args`, never `command`.
    assert "command" not in container


def test_the_service_reaches_the_servers_port_and_no_other_pod():
    selector = kind("Service")["spec"]["selector"].items()
    assert selector <= pod(kind("Deployment"))["metadata"]["labels"].items()
    assert not selector <= pod(kind("Job"))["metadata"]["labels"].items()
    (container,) = pod(kind("Deployment"))["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": config.Settings().port}
    assert f"EXPOSE {config.Settings().port}" in CONTAINERFILE
    assert {p["targetPort"] for p in kind("Service")["spec"]["ports"]} <= ports.keys()
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"] == {"path": "/rest/v1/admin/health", "port": "http"}
    assert liveness["tcpSocket"]["port"] == "http"


def test_the_job_runs_bascule_db_upgrade():
    (container,) = pod(kind("Job"))["spec"]["containers"]
    assert container["args"] == ["bascule", "db", "upgrade"]


@pytest.mark.parametrize(
    "path",
    sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix != ".py"),
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_every_setting_and_command_deploy_names_exists(path: Path):
    text = path.read_text()
    named = set(re.findall(r"\bBASCULE_[A-Z][A-Z0-9_]*[A-Z0-9]", text))
    assert named <= SETTINGS, f"{path.name} names settings that do not exist"
    ctx = click.Context(main)
    for words in re.findall(r"\bbascule((?: [a-z][a-z-]*)+)", text):
        command: click.Command | None = main
        for word in words.split():
            if not isinstance(command, click.Group):
                break
            command = command.get_command(ctx, word)
            assert command, f"{path.name}: `bascule{words}` is no command"


def test_the_proxy_runs_the_recipe_and_its_follower_beside_it(tmp_path: Path):
    """The recipe written at start into a shared volume, the follower and the proxy on
    it, all as one user (HAProxy's switch socket opens to its owner only)."""
    spec = pod(kind("Deployment", "proxy.yaml"))["spec"]
    (recipe,) = spec["initContainers"]
    follower, proxy = spec["containers"]
    argv = recipe["args"]
    assert argv[:3] == ["bascule", "proxy-config", "haproxy"] and recipe["image"] == TAG
    directory = argv[argv.index("--output-dir") + 1]
    assert follower["args"] == ["bascule", "proxy-follow", directory]
    assert proxy["command"] == ["haproxy", "-f", f"{directory}/haproxy.cfg", "-db"]
    for container in (recipe, follower, proxy):
        (mount,) = container["volumeMounts"]
        assert mount["mountPath"] == directory
        assert "runAsUser" not in container.get("securityContext", {})  # the pod's, for all
    assert spec["securityContext"]["runAsUser"] == 10001
    # What proxy-config prints for that recipe is what the containers run.
    host, port = argv[argv.index("--listen") + 1].rsplit(":", 1)
    upstream, bascule = (argv[argv.index(option) + 1] for option in ("--upstream", "--bascule"))
    here = tmp_path / "recipe"
    command = write("haproxy", Recipe(host, int(port), upstream, bascule), here)
    assert command == [part.replace(directory, str(here)) for part in proxy["command"]]
    assert follow_command(here)[1:] == ["proxy-follow", str(here)]
