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
JOBS_REPLACE = {"trainer", "converter"}  # no Deployments of these with kubernetesJobs.enabled (gpu profile)
LIVE_PORT = 50056  # services.live: off by default
GPU_PLACEMENT = {
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "runtimeClassName": "nvidia",
}


def _services(profile_name: str) -> dict[str, int]:
    if profile_name == "gpu":
        return {svc: port for svc, port in SERVICES.items() if svc not in JOBS_REPLACE}
    return SERVICES


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
    profile_name, objects = rendered
    deployments = by_kind(objects, "Deployment")
    services = by_kind(objects, "Service")
    pdbs = by_kind(objects, "PodDisruptionBudget")
    assert {n for n in deployments} == {f"demo-faceswap-{svc}" for svc in _services(profile_name)}
    for svc, port in _services(profile_name).items():
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
        assert container["resources"]["requests"]["ephemeral-storage"] == "4Gi"  # = tmpSizeLimit
        assert {p["name"] for p in services[name]["spec"]["ports"]} == {"grpc", "metrics"}
        assert services[f"{name}-headless"]["spec"]["clusterIP"] == "None"
        assert name in pdbs
        env = {e["name"]: e for e in container["env"]}
        for var in ("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "FACESWAP_BUCKET", "FACESWAP_DB_URL"):
            assert var in env, var
        assert env["FACESWAP_STORAGE"]["value"] == "s3"
        assert env["FACESWAP_METRICS_PORT"]["value"] == str(port + 1000)
        for other in _services(profile_name):
            addr = "JOBS" if other == "orchestrator" else other.upper()
            assert f"FACESWAP_{addr}_ADDR" in env
        assert env["FACESWAP_BIND_HOST"]["value"] == "[::]"  # IPv6-only and dual-stack clusters
        assert env["FACESWAP_MAX_CONNECTION_AGE_S"]["value"] == "300"
        assert "FACESWAP_HEALTH_PORT" not in env and "FACESWAP_TLS_CERT" not in env
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
    # Jobs mode: training and conversion run as Jobs, so no trainer/converter Deployment holds a GPU.
    for svc in JOBS_REPLACE:
        assert f"demo-faceswap-{svc}" not in deployments
        assert f"demo-faceswap-{svc}" not in by_kind(objects, "Service")
    for svc in ("detector",):
        pod = deployments[f"demo-faceswap-{svc}"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert container["image"].endswith("-cuda")
        assert pod["runtimeClassName"] == "nvidia"
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
        assert any(v.get("emptyDir", {}).get("medium") == "Memory" for v in pod["volumes"])
    media = deployments["demo-faceswap-media"]["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in media["resources"].get("limits", {})
    assert not by_kind(objects, "HorizontalPodAutoscaler"), "the converter HPA went with its Deployment"
    # The orchestrator may run Jobs, and only Jobs, in its own namespace.
    role = by_kind(objects, "Role")["demo-faceswap-orchestrator"]
    assert role["metadata"]["namespace"] == NAMESPACE
    resources = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert resources == {
        ("batch", "jobs"),
        ("batch", "jobs/status"),
        ("", "pods"),
        ("", "pods/log"),
        ("", "events"),
        ("", "configmaps"),
    }
    for rule in role["rules"]:
        if rule["apiGroups"] == [""]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}
        if rule["resources"] == ["configmaps"]:
            assert rule["resourceNames"] == ["demo-faceswap-k8s-jobs"]  # the Jobs' owner, nothing else
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
    # Service metrics ports, and 9090 of the worker pods the PodMonitor scrapes.
    ports = {port + 1000 for port in _services("gpu").values()} | {9090}
    assert {p["port"] for p in metrics_rule["ports"]} == ports
    config = json.loads(by_kind(objects, "ConfigMap")["demo-faceswap-k8s-jobs"]["data"]["jobs.json"])
    assert config["ownerConfigMap"] == "demo-faceswap-k8s-jobs"
    assert (config["stuckGraceSeconds"], config["pullGraceSeconds"]) == (600, 120)
    rule = by_kind(objects, "PrometheusRule")["demo-faceswap"]
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts == {
        "FaceswapJobsFailing",
        "FaceswapStageSlow",
        "FaceswapJobBacklog",
        "FaceswapJobApiErrors",
    }
    assert policies["demo-faceswap-job-api"]["spec"]["ingress"][0]["ports"] == [
        {"port": 50050, "protocol": "TCP"}
    ]


def test_deployments_mode_hpa_can_scale_converters_on_the_job_backlog() -> None:
    values = {"services": {"converter": {"autoscaling": {"enabled": True, "queuedJobsPerReplica": 2}}}}
    objects = manifests(values)
    hpa = by_kind(objects, "HorizontalPodAutoscaler")["demo-faceswap-converter"]
    external = [m for m in hpa["spec"]["metrics"] if m["type"] == "External"]
    assert external[0]["external"]["metric"]["name"] == "faceswap_orchestrator_jobs_queued"
    assert external[0]["external"]["target"] == {"type": "AverageValue", "averageValue": "2"}
    assert "replicas" not in by_kind(objects, "Deployment")["demo-faceswap-converter"]["spec"]
    for obj in objects:
        validate(obj)


def test_tls_moves_probes_to_a_plaintext_health_port() -> None:
    objects = manifests(
        {"tls": {"enabled": True, "secretName": "faceswap-tls"}, "clusterDomain": "corp.example"}
    )
    for obj in objects:
        validate(obj)
    for name, dep in by_kind(objects, "Deployment").items():
        port = SERVICES[name.removeprefix("demo-faceswap-")]
        pod = dep["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["FACESWAP_HEALTH_PORT"] == str(port + 2000)
        assert env["FACESWAP_TLS_CERT"] == "/etc/faceswap/tls/tls.crt" and env["FACESWAP_TLS_CA"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": port + 2000}
        assert {"name": "tls", "secret": {"secretName": "faceswap-tls"}} in pod["volumes"]
        assert env["FACESWAP_MEDIA_ADDR"].endswith(".svc.corp.example:50051")
    test_pod = by_kind(objects, "Pod")["demo-faceswap-test-health"]
    assert (
        "demo-faceswap-media.faceswap.svc.corp.example:52051" in test_pod["spec"]["containers"][0]["command"]
    )
    with pytest.raises(Exception, match="secretName"):
        render({"tls": {"enabled": True}})


def test_postgresql_password_survives_reinstalls_and_gitops() -> None:
    objects = manifests()
    secret = by_kind(objects, "Secret")["demo-faceswap-postgresql"]
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert by_kind(objects, "Secret")["demo-faceswap-minio"]["metadata"]["annotations"]
    values = {
        "database": {"postgresql": {"existingSecret": "pg-creds", "passwordKey": "pw", "urlKey": "url"}}
    }
    objects = manifests(values)
    assert "demo-faceswap-postgresql" not in by_kind(objects, "Secret")
    sts = by_kind(objects, "StatefulSet")["demo-faceswap-postgresql"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in sts["containers"][0]["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "pg-creds", "key": "pw"}
    orch = by_kind(objects, "Deployment")["demo-faceswap-orchestrator"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in orch["containers"][0]["env"]}
    assert env["FACESWAP_DB_URL"]["valueFrom"]["secretKeyRef"] == {"name": "pg-creds", "key": "url"}


def test_statefulsets_pull_secrets_and_service_account_names() -> None:
    values = {
        "imagePullSecrets": [{"name": "regcred"}],
        "serviceAccount": {"name": "fs-workloads", "orchestratorName": "fs-orch"},
        "kubernetesJobs": {"enabled": True},
    }
    objects = manifests(values)
    for sts in by_kind(objects, "StatefulSet").values():
        pod = sts["spec"]["template"]["spec"]
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
        assert pod["containers"][0]["resources"]["requests"]["ephemeral-storage"]
    assert set(by_kind(objects, "ServiceAccount")) == {"fs-workloads", "fs-orch"}
    deployments = by_kind(objects, "Deployment")
    assert (
        deployments["demo-faceswap-orchestrator"]["spec"]["template"]["spec"]["serviceAccountName"]
        == "fs-orch"
    )
    assert (
        deployments["demo-faceswap-media"]["spec"]["template"]["spec"]["serviceAccountName"] == "fs-workloads"
    )
    assert by_kind(objects, "RoleBinding")["demo-faceswap-orchestrator"]["subjects"][0]["name"] == "fs-orch"
    config = json.loads(by_kind(objects, "ConfigMap")["demo-faceswap-k8s-jobs"]["data"]["jobs.json"])
    assert config["serviceAccountName"] == "fs-workloads"


def test_helm_test_pod_checks_every_service() -> None:
    pod = by_kind(manifests(), "Pod")["demo-faceswap-test-health"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    command = pod["spec"]["containers"][0]["command"]
    targets = command[3:]
    assert targets == [
        f"demo-faceswap-{svc}.faceswap.svc.cluster.local:{port}" for svc, port in sorted(SERVICES.items())
    ]
    compile(command[2], "helm-test", "exec")  # the inline script is valid Python
    assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


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


def _live(values: dict) -> tuple[list[dict], dict, dict, dict]:
    """All objects with services.live set to ``values`` (enabled), the live pod spec, container, env."""
    objects = manifests({"services": {"live": {"enabled": True, **values.pop("live", {})}}, **values})
    for obj in objects:
        try:
            validate(obj)
        except Exception as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} ({obj['_template']}): {exc}")
    pod = by_kind(objects, "Deployment")["demo-faceswap-live"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return objects, pod, container, {e["name"]: e for e in container["env"]}


def test_live_service_is_off_by_default() -> None:
    objects = manifests()
    assert not [o for o in objects if o["metadata"]["name"].startswith("demo-faceswap-live")]
    assert "LiveService" not in render()["faceswap/templates/NOTES.txt"]


def test_live_service_deploys_like_the_other_services() -> None:
    objects, pod, container, env = _live({})
    name = "demo-faceswap-live"
    assert container["command"] == ["python", "-m", "services.live.server", "--port", str(LIVE_PORT)]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "grpc": LIVE_PORT,
        "metrics": LIVE_PORT + 1000,
    }
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": LIVE_PORT}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    # CPU by default: no GPU, the CPU image, torch kept off any GPU.
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert not container["image"].endswith("-cuda") and "nodeSelector" not in pod
    assert env["CUDA_VISIBLE_DEVICES"]["value"] == ""
    # Storage like every service: B's stored face sets (faces_b_prefix) come from the bucket.
    assert env["FACESWAP_STORAGE"]["value"] == "s3" and "S3_ACCESS_KEY" in env
    assert env["FACESWAP_METRICS_PORT"]["value"] == str(LIVE_PORT + 1000)
    assert env["FACESWAP_LIVE_MAX_STREAMS"]["value"] == "4"
    assert "FACESWAP_LIVE_FACES_DIRS" not in env  # no volume: faces_b_path is refused
    assert "FACESWAP_TOKENS_FILE" not in env
    # Scraped like the others (the ServiceMonitor selects faceswap.io/metrics Services).
    services = by_kind(objects, "Service")
    assert services[name]["metadata"]["labels"]["faceswap.io/metrics"] == "true"
    assert {p["name"]: p["port"] for p in services[name]["spec"]["ports"]} == {
        "grpc": LIVE_PORT,
        "metrics": LIVE_PORT + 1000,
    }
    assert services[f"{name}-headless"]["spec"]["clusterIP"] == "None"
    assert name in by_kind(objects, "PodDisruptionBudget")
    # Nothing inside calls the live service, so no pod is handed its address.
    for dep in by_kind(objects, "Deployment").values():
        names = {e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert "FACESWAP_LIVE_ADDR" not in names and "FACESWAP_MEDIA_ADDR" in names
    test_pod = by_kind(objects, "Pod")["demo-faceswap-test-health"]
    assert f"{name}.faceswap.svc.cluster.local:{LIVE_PORT}" in test_pod["spec"]["containers"][0]["command"]
    notes = render({"services": {"live": {"enabled": True}}})["faceswap/templates/NOTES.txt"]
    assert f"port-forward svc/{name} {LIVE_PORT}:{LIVE_PORT}" in notes
    from services.cli import build_parser

    build_parser().parse_args(
        ["live", "--addr", f"127.0.0.1:{LIVE_PORT}", "--faces-b-prefix", "b/", "--input", "0", "--preview"]
    )


def test_live_service_gpu_is_optional() -> None:
    _, pod, container, env = _live({"live": {"gpu": {"enabled": True, "count": 1}, **GPU_PLACEMENT}})
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["limits"]["memory"] == "4Gi"  # the values' limits kept
    assert container["image"].endswith("-cuda")
    assert "CUDA_VISIBLE_DEVICES" not in env
    for key, value in GPU_PLACEMENT.items():
        assert pod[key] == value, key
    assert any(v.get("emptyDir", {}).get("medium") == "Memory" for v in pod["volumes"])
    dep = by_kind(
        manifests({"services": {"live": {"enabled": True, "gpu": {"enabled": True}}}}), "Deployment"
    )
    assert dep["demo-faceswap-live"]["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


def test_live_service_behind_the_same_auth_and_tls() -> None:
    values = {
        "auth": {"tokensSecret": "faceswap-tokens"},
        "tls": {"enabled": True, "secretName": "faceswap-tls"},
        "networkPolicy": {"enabled": True, "liveFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},
    }
    objects, pod, container, env = _live(values)
    # Public like the job API: the same tokens file (any known client), not the internal-only rule.
    assert env["FACESWAP_TOKENS_FILE"]["value"] == "/etc/faceswap/auth/tokens"
    assert {"name": "auth", "secret": {"secretName": "faceswap-tokens"}} in pod["volumes"]
    assert {"name": "auth", "mountPath": "/etc/faceswap/auth", "readOnly": True} in container["volumeMounts"]
    orch = by_kind(objects, "Deployment")["demo-faceswap-orchestrator"]["spec"]["template"]["spec"]
    orch_env = {e["name"]: e for e in orch["containers"][0]["env"]}
    assert orch_env["FACESWAP_TOKENS_FILE"] == env["FACESWAP_TOKENS_FILE"]
    media = by_kind(objects, "Deployment")["demo-faceswap-media"]["spec"]["template"]["spec"]
    assert "FACESWAP_TOKENS_FILE" not in {e["name"] for e in media["containers"][0]["env"]}
    # TLS: the same certificates, probes on the plaintext health port.
    for var in ("FACESWAP_TLS_CERT", "FACESWAP_TLS_KEY", "FACESWAP_TLS_CA"):
        assert env[var] == orch_env[var], var
    assert env["FACESWAP_HEALTH_PORT"]["value"] == str(LIVE_PORT + 2000)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": LIVE_PORT + 2000}
    assert {"name": "tls", "secret": {"secretName": "faceswap-tls"}} in pod["volumes"]
    # Clients outside the release reach the live gRPC port, from the peers allowed.
    policy = by_kind(objects, "NetworkPolicy")["demo-faceswap-live"]["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "live"
    assert policy["ingress"] == [
        {"ports": [{"port": LIVE_PORT, "protocol": "TCP"}], "from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}
    ]
    metrics_ports = {
        p["port"] for p in by_kind(objects, "NetworkPolicy")["demo-faceswap"]["spec"]["ingress"][1]["ports"]
    }
    assert LIVE_PORT + 1000 in metrics_ports


def test_live_face_sets_from_a_mounted_volume() -> None:
    volume = {"persistentVolumeClaim": {"claimName": "b-faces", "readOnly": True}}
    values = {"live": {"faces": {"volume": volume, "mountPath": "/srv/faces"}, "maxStreams": 2}}
    _, pod, container, env = _live(values)
    assert env["FACESWAP_LIVE_FACES_DIRS"]["value"] == "/srv/faces"
    assert env["FACESWAP_LIVE_MAX_STREAMS"]["value"] == "2"
    assert {"name": "faces", "mountPath": "/srv/faces", "readOnly": True} in container["volumeMounts"]
    assert {"name": "faces", **volume} in pod["volumes"]


def test_helm_lint_passes_with_live() -> None:
    import helm_python

    values = {"services": {"live": {"enabled": True, "gpu": {"enabled": True}, **GPU_PLACEMENT}}}
    report = helm_python.lint(str(CHART), values, strict=True, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


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
    ({"services": {"live": {"maxStreams": 0}}}, "maxStreams"),
    ({"services": {"live": {"faces": {"volume": {"name": "x", "emptyDir": {}}}}}}, "volume"),
    ({"services": {"live": {"faces": {"mountPath": "faces"}}}}, "mountPath"),
    ({"services": {"media": {"maxStreams": 2}}}, "maxStreams"),  # live's own keys only on live
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
