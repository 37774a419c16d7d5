"""The Helm chart renders, validates against the Kubernetes 1.30 OpenAPI schema, lints and rejects bad values.

Rendering uses helm-python-sdk (Helm's Go SDK, no helm binary, no cluster); validation uses
kubernetes-validate in strict mode (unknown fields fail).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from chart_render import CHART, NAMESPACE, by_kind, manifests, profile, render, validate

SERVICES = {"orchestrator": 50050, "media": 50051, "detector": 50052, "trainer": 50053, "converter": 50054}
PROFILES = ["default", "gpu", "external-s3"]


@pytest.fixture(scope="module", params=PROFILES)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    return request.param, manifests(profile(request.param))


def test_every_manifest_validates(rendered: tuple[str, list[dict]]) -> None:
    name, objects = rendered
    assert objects
    for obj in objects:
        try:
            validate(obj)
        except Exception as exc:  # the message names the object and the failing field
            pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']} ({obj['_template']}): {exc}")
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(names) == len(set(names)), "duplicate objects"


def test_services_are_hardened_and_probed(rendered: tuple[str, list[dict]]) -> None:
    _, objects = rendered
    deployments = by_kind(objects, "Deployment")
    services = by_kind(objects, "Service")
    pdbs = by_kind(objects, "PodDisruptionBudget")
    for svc, port in SERVICES.items():
        name = f"demo-faceswap-{svc}"
        pod = deployments[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"] == ["python", "-m", f"services.{svc}.server", "--port", str(port)]
        assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
            "grpc": port,
            "metrics": port + 1000,
        }
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": port}
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", "/data"} <= mounts
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert {p["name"] for p in services[name]["spec"]["ports"]} == {"grpc", "metrics"}
        assert services[f"{name}-headless"]["spec"]["clusterIP"] == "None"
        assert name in pdbs
        env = {e["name"]: e for e in container["env"]}
        for var in ("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "FACESWAP_BUCKET", "FACESWAP_DB_URL"):
            assert var in env, var
        assert env["FACESWAP_STORAGE"]["value"] == "s3"
        assert env["FACESWAP_METRICS_PORT"]["value"] == str(port + 1000)
        for addr in ("MEDIA", "DETECTOR", "TRAINER", "CONVERTER", "JOBS"):
            assert f"FACESWAP_{addr}_ADDR" in env
    orchestrator = deployments["demo-faceswap-orchestrator"]
    assert orchestrator["spec"]["replicas"] == 2
    assert pdbs["demo-faceswap-orchestrator"]["spec"]["minAvailable"] == 1


def test_default_profile_bundles_minio_and_postgresql() -> None:
    objects = manifests()
    sets = by_kind(objects, "StatefulSet")
    assert {"demo-faceswap-minio", "demo-faceswap-postgresql"} <= set(sets)
    for sts in sets.values():
        assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
        assert sts["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    secrets = by_kind(objects, "Secret")
    assert set(secrets["demo-faceswap-postgresql"]["data"]) == {"password", "db-url"}
    assert set(secrets["demo-faceswap-minio"]["data"]) == {"root-user", "root-password"}
    # No GPU anywhere, and no Kubernetes API access for anyone.
    text = yaml.safe_dump_all(objects)
    assert "nvidia.com/gpu:" not in text
    assert not by_kind(objects, "Role") and not by_kind(objects, "ServiceMonitor")
    for dep in by_kind(objects, "Deployment").values():
        assert dep["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    migrate = next(o for o in objects if o["kind"] == "Job")
    assert migrate["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"
    assert migrate["spec"]["template"]["spec"]["containers"][0]["command"] == ["faceswap", "jobs", "migrate"]
    dashboard = by_kind(objects, "ConfigMap")["demo-faceswap-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["faceswap.json"])["panels"]


def test_gpu_profile_schedules_on_gpu_nodes() -> None:
    objects = manifests(profile("gpu"))
    deployments = by_kind(objects, "Deployment")
    for svc in ("detector", "trainer", "converter"):
        pod = deployments[f"demo-faceswap-{svc}"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert container["image"].endswith("-cuda")
        assert pod["runtimeClassName"] == "nvidia"
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
        assert any(v.get("emptyDir", {}).get("medium") == "Memory" for v in pod["volumes"])
    assert "affinity" in deployments["demo-faceswap-trainer"]["spec"]["template"]["spec"]
    media = deployments["demo-faceswap-media"]["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in media["resources"].get("limits", {})
    # HPA on converters replaces the fixed replica count.
    hpa = by_kind(objects, "HorizontalPodAutoscaler")["demo-faceswap-converter"]
    assert hpa["spec"]["maxReplicas"] == 8
    assert "replicas" not in deployments["demo-faceswap-converter"]["spec"]
    # The orchestrator may run Jobs, and only Jobs, in its own namespace.
    role = by_kind(objects, "Role")["demo-faceswap-orchestrator"]
    assert role["metadata"]["namespace"] == NAMESPACE
    resources = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert resources == {("batch", "jobs"), ("batch", "jobs/status"), ("", "pods"), ("", "pods/log")}
    for rule in role["rules"]:
        if rule["apiGroups"] == [""]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}
    binding = by_kind(objects, "RoleBinding")["demo-faceswap-orchestrator"]
    assert binding["subjects"][0]["name"] == "demo-faceswap-orchestrator"
    orch = deployments["demo-faceswap-orchestrator"]["spec"]["template"]["spec"]
    assert orch["serviceAccountName"] == "demo-faceswap-orchestrator"
    assert orch["automountServiceAccountToken"] is True
    env = {e["name"]: e for e in orch["containers"][0]["env"]}
    assert env["FACESWAP_RUNNER"]["value"] == "kubernetes"
    assert env["FACESWAP_K8S_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    monitor = by_kind(objects, "ServiceMonitor")["demo-faceswap"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    assert "demo-faceswap-workers" in by_kind(objects, "PodMonitor")
    policies = by_kind(objects, "NetworkPolicy")
    metrics_rule = policies["demo-faceswap"]["spec"]["ingress"][1]
    assert {p["port"] for p in metrics_rule["ports"]} == {port + 1000 for port in SERVICES.values()}
    assert policies["demo-faceswap-job-api"]["spec"]["ingress"][0]["ports"] == [
        {"port": 50050, "protocol": "TCP"}
    ]


def test_external_s3_profile_uses_existing_secrets() -> None:
    objects = manifests(profile("external-s3"))
    assert not by_kind(objects, "StatefulSet") and not by_kind(objects, "Secret")
    pod = by_kind(objects, "Deployment")["demo-faceswap-converter"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["S3_ENDPOINT"]["value"] == "https://minio.storage.svc.cluster.local:9000"
    assert env["S3_SECURE"]["value"] == "true"
    assert env["FACESWAP_BUCKET"]["value"] == "faceswap-prod"
    assert env["S3_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "faceswap-s3", "key": "access-key"}
    assert env["S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "faceswap-s3", "key": "secret-key"}
    assert env["FACESWAP_DB_URL"]["valueFrom"]["secretKeyRef"] == {"name": "faceswap-db", "key": "db-url"}
    orch = by_kind(objects, "Deployment")["demo-faceswap-orchestrator"]["spec"]["template"]["spec"]
    assert {"name": "auth", "secret": {"secretName": "faceswap-tokens"}} in orch["volumes"]


def test_inline_external_credentials_create_secrets() -> None:
    values = {
        "storage": {
            "mode": "external",
            "external": {"endpoint": "s3.example.com", "accessKey": "AK", "secretKey": "SK"},
        },
        "database": {"mode": "external", "external": {"url": "postgresql://u:p@db:5432/fs"}},
    }
    objects = manifests(values)
    secrets = by_kind(objects, "Secret")
    assert set(secrets) == {"demo-faceswap-s3", "demo-faceswap-db"}
    for obj in objects:
        validate(obj)


def test_notes_explain_how_to_submit_a_job() -> None:
    notes = render()["faceswap/templates/NOTES.txt"]
    assert "port-forward svc/demo-faceswap-orchestrator 50050:50050" in notes
    assert "faceswap swap" in notes and "FACESWAP_JOBS_ADDR=127.0.0.1:50050" in notes
    # The commands in the notes are ones the CLI really has.
    from services.cli import build_parser

    parser = build_parser()
    parser.parse_args(["swap", "a.mp4", "--faces-b", "b.mp4", "-o", "out.mp4", "--remote"])
    parser.parse_args(["jobs", "list"])
    parser.parse_args(["jobs", "migrate"])


def test_helm_lint_passes() -> None:
    import helm_python

    for name in PROFILES:
        report = helm_python.lint(str(CHART), profile(name), strict=True, kube_version="v1.30.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not problems, (name, problems)


def test_chart_packages_and_renders_from_the_archive(tmp_path: Path) -> None:
    import helm_python

    archive = helm_python.package(str(CHART), destination=str(tmp_path))
    assert Path(archive).name == "faceswap-0.1.0.tgz"
    with helm_python.Chart.load(archive) as chart:
        rendered = chart.render({}, name="demo", namespace=NAMESPACE)
    assert json.loads(
        yaml.safe_load(rendered["faceswap/templates/dashboard-configmap.yaml"])["data"]["faceswap.json"]
    )


BAD_VALUES = [
    ({"services": {"trainer": {"gpu": {"enabled": "yes"}}}}, "enabled"),
    ({"services": {"converter": {"replicas": -1}}}, "replicas"),
    ({"services": {"media": {"port": 80}}}, "port"),
    ({"services": {"media": {"replica": 2}}}, "replica"),  # typo: unknown key
    ({"storage": {"mode": "gcs"}}, "mode"),
    ({"storage": {"mode": "external"}}, "external"),  # no endpoint, no credentials
    ({"storage": {"mode": "external", "external": {"endpoint": "s3.example.com"}}}, "external"),
    ({"database": {"mode": "external"}}, "external"),  # neither URL nor Secret
    ({"database": {"mode": "external", "external": {"url": "mysql://db"}}}, "url"),
    ({"kubernetesJobs": {"convert": {"parallelism": 0}}}, "parallelism"),
    ({"services": {"trainer": {"tolerations": [{"key": "k", "operator": "Maybe"}]}}}, "operator"),
    ({"services": {"trainer": {"resources": {"limits": {"memory": "lots"}}}}}, "memory"),
    ({"storage": {"bucket": "Bad_Bucket"}}, "bucket"),
    ({"logLevel": "LOUD"}, "logLevel"),
]


@pytest.mark.parametrize(("values", "field"), BAD_VALUES, ids=[f for _, f in BAD_VALUES])
def test_schema_rejects_bad_values(values: dict, field: str) -> None:
    import helm_python

    with pytest.raises(helm_python.HelmError) as info:
        render(copy.deepcopy(values))
    assert field in str(info.value)


def test_schema_is_valid_draft7_and_accepts_every_profile() -> None:
    # Draft 7 keeps older Helm 3 releases (gojsonschema) and Helm 3.18+/4 on the same schema.
    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(defaults)
    for name in PROFILES[1:]:
        merged = copy.deepcopy(defaults)
        _merge(merged, profile(name))
        jsonschema.Draft7Validator(schema).validate(merged)


def _merge(base: dict, override: dict) -> None:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
