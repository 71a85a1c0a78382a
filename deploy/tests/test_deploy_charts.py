"""helm lint / helm template of every chart, schema validation, and the properties that matter."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

# Custom resources the Kubernetes schemas cannot know; checked structurally instead.
# Prometheus Operator kinds, outside the Kubernetes schemas: the essentials of each are checked.
CRDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"):
        lambda spec: spec["selector"]["matchLabels"] and spec["endpoints"],
    ("monitoring.coreos.com/v1", "PrometheusRule"):
        lambda spec: spec["groups"] and all(r.get("expr") for g in spec["groups"] for r in g["rules"]),
}
SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE_KEY|PUBLIC_KEY|DATABASE_URL|JWKS|API_KEY")
CREDENTIAL_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict], kind: str, name: str) -> dict | None:
    return next((d for d in of_kind(docs, kind) if d["metadata"]["name"] == name), None)


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Deployment", "Job")
    ]


# --- lint -------------------------------------------------------------------------------------


def test_helm_lint_strict(any_chart: str, helm, charts_dir: Path) -> None:
    helm("lint", "--strict", str(charts_dir / any_chart))


def test_umbrella_lints_with_every_environment(helm, charts_dir: Path, layout) -> None:
    assert layout["umbrellas"], "no umbrella chart found"
    for chart in layout["umbrellas"]:
        for env in layout["environments"]:
            values = layout["root"] / "deploy" / "environments" / env / "values.yaml"
            helm("lint", "--strict", str(charts_dir / chart), "-f", str(values))


@pytest.mark.parametrize(
    "bad",
    [
        "protocol=tcp",
        "port=0",
        "image.repository=",
        "image.digest=latest",
        "env.CRM_DB_PASSWORD=hunter2",  # a credential in the ConfigMap
        "secretEnv.CRM_TOKEN=plain-value",  # secretEnv takes references, never values
        "securityContext.readOnlyRootFilesystem=false",
        "podSecurityContext.runAsNonRoot=false",
        "database.enabled=true,database.secretName=",
        "autoscaling.minReplicas=0",
        "no-such-key=1",
    ],
)
def test_bad_values_fail_lint(app_chart: str, bad: str, helm, charts_dir: Path) -> None:
    proc = helm("lint", "--strict", str(charts_dir / app_chart), "--set", bad, check=False)
    assert proc.returncode != 0, f"helm lint accepted {bad!r}:\n{proc.stdout}"


# --- rendered manifests -----------------------------------------------------------------------


def test_manifests_match_kubernetes_schemas(render_case, render, layout) -> None:
    docs = render(*render_case)
    assert of_kind(docs, "Deployment"), "nothing rendered"
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in CRDS:
            assert CRDS[key](doc["spec"]), f"{doc['kind']}/{doc['metadata']['name']} lacks its essentials"
            continue
        try:
            kubernetes_validate.validate(doc, layout["kube_version"], strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {e.message}")


def test_pods_are_hardened(render_case, render) -> None:
    for where, spec in pod_specs(render(*render_case)):
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] > 0, where
        assert spec["automountServiceAccountToken"] is False, where
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert "ALL" in sc["capabilities"]["drop"], where
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where
            assert not c["image"].endswith(":latest"), where


def test_deployments_have_probes_and_graceful_shutdown(render_case, render) -> None:
    for dep in of_kind(render(*render_case), "Deployment"):
        spec = dep["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] >= 10
        (c,) = spec["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            p = c[probe]
            if "grpc" in ports:
                assert p["grpc"]["port"] == ports["grpc"], probe
            else:
                assert p["httpGet"]["port"] == "http", probe
        if "http" in ports:
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        sleep = c["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep[0] == "sleep" and int(sleep[1]) < spec["terminationGracePeriodSeconds"]


def test_every_service_has_its_companions(render_case, render) -> None:
    chart, env = render_case
    docs = render(chart, env)
    for dep in of_kind(docs, "Deployment"):
        name = dep["metadata"]["name"]
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

        svc = named(docs, "Service", name)
        assert svc and selects(svc["spec"]["selector"], pod_labels), name
        assert named(docs, "ServiceAccount", name), name
        assert named(docs, "ConfigMap", f"{name}-env"), name
        netpol = named(docs, "NetworkPolicy", name)
        assert netpol and selects(netpol["spec"]["podSelector"]["matchLabels"], pod_labels), name
        assert set(netpol["spec"]["policyTypes"]) == {"Ingress", "Egress"}

        hpa = named(docs, "HorizontalPodAutoscaler", name)
        pdb = named(docs, "PodDisruptionBudget", name)
        # Replicas belong to the HPA when there is one, so upgrades do not reset its scaling.
        assert (hpa is None) == ("replicas" in dep["spec"]), name
        if env != "dev":  # dev deliberately runs single replicas without HPA/PDB
            assert hpa and hpa["spec"]["scaleTargetRef"]["name"] == name, name
            assert pdb and selects(pdb["spec"]["selector"]["matchLabels"], pod_labels), name


def test_migration_job_only_for_services_with_a_database(render_case, render) -> None:
    docs = render(*render_case)
    for dep in of_kind(docs, "Deployment"):
        name = dep["metadata"]["name"]
        env = {e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        job = named(docs, "Job", f"{name}-migrate")
        assert (job is not None) == ("CRM_DATABASE_URL" in env), name
        if job is None:
            continue
        hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
        assert hooks == {"pre-install", "pre-upgrade"}
        (c,) = job["spec"]["template"]["spec"]["containers"]
        assert c["args"] == ["migrate"]
        assert c["image"] == dep["spec"]["template"]["spec"]["containers"][0]["image"]
        # The Service must never route traffic to a migration pod.
        svc = named(docs, "Service", name)
        assert not selects(svc["spec"]["selector"], job["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize(("chart", "has_job"), [("customers", True), ("gateway", False)])
def test_migration_job_for_customers_not_gateway(chart: str, has_job: bool, render) -> None:
    jobs = of_kind(render(chart), "Job")
    assert bool(jobs) == has_job
    suite = {j["metadata"]["name"] for j in of_kind(render("crm-suite"), "Job")}
    assert (f"{chart}-migrate" in suite) == has_job


def test_no_secret_values_are_rendered(render_case, render) -> None:
    docs = render(*render_case)
    assert not of_kind(docs, "Secret"), "charts reference existing Secrets; they never create them"
    plain: list[tuple[str, str, str]] = []
    for cm in of_kind(docs, "ConfigMap"):
        plain += [(cm["metadata"]["name"], k, str(v)) for k, v in cm.get("data", {}).items()]
    for where, spec in pod_specs(docs):
        for c in spec["containers"]:
            for e in c.get("env", []):
                if "value" in e:
                    plain.append((where, e["name"], str(e["value"])))
                else:
                    assert "secretKeyRef" in e["valueFrom"], (where, e["name"])
    for where, name, value in plain:
        assert not SECRETISH.search(name), f"{where}: {name} is a credential in plain text"
        assert not CREDENTIAL_IN_URL.search(value), f"{where}: {name} embeds a credential"
        assert "-----BEGIN" not in value, f"{where}: {name} embeds a key"


def test_config_changes_roll_the_pods(render, layout) -> None:
    chart = layout["apps"][0]
    base = render(chart)
    dev = render(chart, "dev")

    def checksum(docs):
        dep = of_kind(docs, "Deployment")[0]
        return dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(base) != checksum(dev)


def test_umbrella_renders_exactly_its_services(render, layout) -> None:
    for umbrella in layout["umbrellas"]:
        meta = yaml.safe_load((layout["charts"] / umbrella / "Chart.yaml").read_text())
        services = {d["name"] for d in meta["dependencies"]}
        deployed = {d["metadata"]["name"] for d in of_kind(render(umbrella), "Deployment")}
        assert deployed == services
