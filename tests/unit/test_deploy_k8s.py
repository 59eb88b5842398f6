"""deploy/k8s, on paper but not unchecked: the instance file through Dagster's own config schemas,
the run's Kubernetes Job built by dagster-k8s's own code from it, and every manifest through the
Kubernetes API models (via dagster-k8s's converter, which refuses unknown fields)."""

from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from dagster import DagsterRun
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import construct_dagster_k8s_job
from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict

from pipelines.orchestration import dagster_internals as di
from pipelines.settings import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy" / "k8s"
IMAGE = "intent-harness:0.1.0"
SECRET_KEYS = ("DATABASE_URL", "APP_DATABASE_URL", "DAGSTER_DATABASE_URL", "DAGSTER_PG_URL")


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _kustomization() -> dict[str, Any]:
    (doc,) = _docs("kustomization.yaml")
    return doc


def _manifests() -> list[dict[str, Any]]:
    return [doc for name in _kustomization()["resources"] for doc in _docs(name)]


def _instance() -> dict[str, Any]:
    (doc,) = _docs("dagster.yaml")
    return doc


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the intent-harness-db secret holds (values made up: nothing connects)."""
    for key in SECRET_KEYS:
        monkeypatch.setenv(key, "postgresql+psycopg2://harness@db.invalid/harness_dagster")


def test_the_instance_passes_dagsters_instance_schema(secret_env: None) -> None:
    config, custom_class = di.dagster_instance_config(str(DEPLOY))
    assert custom_class is None
    assert config["run_launcher"]["module"] == "dagster_k8s"


@pytest.mark.parametrize("section", ["run_storage", "event_log_storage", "schedule_storage", "run_coordinator",
                                     "run_launcher", "compute_logs", "local_artifact_storage"])
def test_each_configured_class_accepts_its_config(secret_env: None, section: str) -> None:
    entry = _instance()[section]
    klass = di.class_from_code_pointer(entry["module"], entry["class"])
    result = di.process_config(klass.config_type(), entry.get("config", {}))
    assert result.success, [e.message for e in result.errors or []]


def test_a_run_pod_is_built_by_dagster_k8s_from_this_config(tmp_path: Path) -> None:
    # The launcher as the daemon would make it, except for the cluster credentials (no cluster).
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "paper",
        "clusters": [{"name": "paper", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "paper", "context": {"cluster": "paper", "user": "paper"}}],
        "users": [{"name": "paper", "user": {"token": "none"}}],
    }))
    config = {**_instance()["run_launcher"]["config"], "load_incluster_config": False,
              "kubeconfig_file": str(kubeconfig)}
    launcher = K8sRunLauncher(**config)
    run = DagsterRun(job_name="intent_job", run_id="00000000-0000-4000-8000-000000000000")
    context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=True)
    job = construct_dagster_k8s_job(
        context.get_k8s_job_config(job_image=IMAGE, run_launcher=launcher), args=["dagster", "api", "execute_run"],
        job_name="dagster-run-paper", pod_name="dagster-run-paper", component="run_worker",
        user_defined_k8s_config=context.run_k8s_config)
    pod = job.spec.template.spec
    (container,) = pod.containers
    assert container.image == IMAGE and container.security_context.privileged is True
    assert pod.service_account_name == "intent-harness-run" and pod.restart_policy == "Never"
    assert [e.secret_ref.name for e in container.env_from if e.secret_ref] == ["intent-harness-db"]
    assert {"name": "HARNESS_DATA_DIR", "value": "/var/lib/harness"} in [
        {"name": e.name, "value": e.value} for e in container.env]
    (instance,) = [v.name for v in pod.volumes if v.config_map and v.config_map.name == "intent-harness-instance"]
    assert [m.mount_path for m in container.volume_mounts if m.name == instance] == ["/opt/dagster/dagster_home"]
    assert {"name": "DAGSTER_HOME", "value": "/opt/dagster/dagster_home"} in [
        {"name": e.name, "value": e.value} for e in container.env]
    assert job.spec.backoff_limit == 0 and job.spec.ttl_seconds_after_finished == 86400


@pytest.mark.parametrize("doc", _manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_is_a_valid_kubernetes_object(doc: dict[str, Any]) -> None:
    version = doc["apiVersion"].rsplit("/", 1)[-1].capitalize()
    model = getattr(kubernetes.client, f"{version}{doc['kind']}")
    obj = k8s_model_from_dict(model, k8s_snake_case_dict(model, doc))
    assert obj.metadata.name == doc["metadata"]["name"]


def test_the_parts_agree_with_each_other() -> None:
    manifests = _manifests()
    kustomization = _kustomization()
    launcher = _instance()["run_launcher"]["config"]
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in manifests:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    # Every file here is deployed, and the generated maps are the ones the instance names.
    assert set(kustomization["resources"]) | {"kustomization.yaml", "dagster.yaml", "workspace.yaml"} == \
        {p.name for p in DEPLOY.iterdir()}
    maps = {m["name"]: m["files"] for m in kustomization["configMapGenerator"]}
    assert maps[launcher["instance_config_map"]] == ["dagster.yaml"]
    assert launcher["job_namespace"] == kustomization["namespace"] in by_kind["Namespace"]
    assert launcher["service_account_name"] in by_kind["ServiceAccount"]
    # The webserver and daemon find the code server through its Service.
    (location,) = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"]
    code_service = by_kind["Service"][location["grpc_server"]["host"]]
    assert [p["port"] for p in code_service["spec"]["ports"]] == [location["grpc_server"]["port"]]
    # One image everywhere, and run pods use the one the code server reports.
    for deployment in by_kind["Deployment"].values():
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            assert container["image"] == IMAGE
            assert container["envFrom"] == [{"secretRef": {"name": launcher["env_secrets"][0]}}]
    code = by_kind["Deployment"]["intent-harness-code"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "DAGSTER_CURRENT_IMAGE", "value": IMAGE} in code["env"]
    assert by_kind["Deployment"]["intent-harness-daemon"]["spec"]["replicas"] == 1  # one daemon per instance
    # The API reaches the webserver's Service (DAGSTER_URL), not loopback.
    api = by_kind["Deployment"]["intent-harness-api"]["spec"]["template"]["spec"]["containers"][0]
    web = by_kind["Service"]["intent-harness-webserver"]["spec"]["ports"][0]["port"]
    assert {"name": "DAGSTER_URL", "value": f"http://intent-harness-webserver:{web}"} in api["env"]
