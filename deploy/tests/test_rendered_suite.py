"""The charts' configuration, proven by reading it the way the processes do and by running it.

For every environment the umbrella chart is rendered as `helm install` would, and each Deployment
and migration Job gets exactly the environment its container would: `env` (values, ConfigMap and
Secret references, Secrets resolved from generated test values) and `envFrom`. Then:

- every rendered `CRM_*`/`OTEL_*` variable is a field of that process's settings class, and the
  settings class loads from that environment alone (every required setting is rendered, every
  value parses); the pairs that must agree across processes do (token issuer and audience);
- for the dev environment, every process is started on this machine with exactly that
  environment (cluster names and ports mapped to loopback and free ports; PostgreSQL from the
  test plugin; NATS embedded with the generated per-service users and TLS with a generated CA),
  each migration Job's command first, and a smoke runs through the gateway: the bootstrap admin
  signs in, creates a customer and reads it back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic_settings import BaseSettings

from crmkit.auth.keys import generate_keypair, jwks_of
from crmkit.crypto import generate_key
from crmkit.embedded import EmbeddedNats, wait_until
from crmkit.events.permissions import SUITE, nats_config
from crmkit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = sorted(p.parent.name for p in (ROOT / "deploy" / "environments").glob("*/values.yaml"))
NATS_HOST = "nats.nats.svc.cluster.local"
ADMIN_PASSWORD = "Smoke-test-0451"
BIN = Path(sys.executable).parent
DEPLOYMENT_DOC = (ROOT / "docs" / "deployment.md").read_text()


def settings_class(process: str) -> type[BaseSettings]:
    """The settings class a process loads: the gateway's, or the one a service's settings module
    defines on top of crmkit's ServiceSettings."""
    if process == "gateway":
        from crm_gateway.settings import GatewaySettings

        return GatewaySettings
    module = importlib.import_module(f"crm_{process}.settings")
    found = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, ServiceSettings)
             and c.__module__ == module.__name__]
    assert len(found) == 1, f"crm_{process}.settings should define one ServiceSettings subclass: {found}"
    return found[0]


def variables_read(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads (its prefix, or a field's alias)."""
    prefix = cls.model_config.get("env_prefix", "")
    return {(f.validation_alias if isinstance(f.validation_alias, str) else prefix + name).upper()
            for name, f in cls.model_fields.items()}


class GeneratedSecrets:
    """A value for every Secret key the docs tell an operator to create, made for this test run."""

    def __init__(self, database_urls: dict[str, str] | None = None) -> None:
        access, principal, service = generate_keypair(), generate_keypair(), generate_keypair()
        self.ca_pem, self.server_cert, self.server_key = _nats_certificates()
        self.nats_passwords = {user: os.urandom(12).hex() for user in SUITE}
        self.values: dict[tuple[str, str], str] = {
            ("crm-principal-key", "public.pem"): principal.public_pem,
            ("crm-principal-key", "private.pem"): principal.private_pem,
            ("crm-service-key", "public.pem"): service.public_pem,
            ("crm-service-key", "private.pem"): service.private_pem,
            ("crm-gateway-jwt", "jwks.json"): json.dumps({"keys": []}),
            ("crm-identity-signing-keys", "keys.pem"): access.private_pem,
            ("crm-identity-bootstrap", "admin-password"): ADMIN_PASSWORD,
            ("customers-field-keys", "keys"): f"k1:{generate_key()}",
            ("customers-field-keys", "index-key"): generate_key(),
            ("sap-credentials", "password"): "sap-secret",
            ("crm-nats-ca", "ca.crt"): self.ca_pem,
            **{("crm-nats-credentials", user): pw for user, pw in self.nats_passwords.items()},
        }
        self.jwks = jwks_of(access.public_pem)
        self.database_urls = database_urls or {}

    def get(self, name: str, key: str) -> str:
        if name.endswith("-db") and key == "url":
            service = name.removesuffix("-db")
            return self.database_urls.get(service, f"postgresql+asyncpg://{service}:pw@db:5432/crm_{service}")
        assert f"`{name}`" in DEPLOYMENT_DOC, f"Secret {name} is read by a workload but docs/deployment.md omits it"
        assert (name, key) in self.values, f"Secret {name} key {key}: this test makes no value for it"
        return self.values[name, key]


def _nats_certificates() -> tuple[str, str, str]:
    """A CA and a server certificate for NATS's in-cluster name and 127.0.0.1 (PEM)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crm-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NATS_HOST)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(NATS_HOST), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem).decode(), cert.public_bytes(pem).decode(),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())


def workloads(manifests: list[dict], secrets: GeneratedSecrets) -> dict[tuple[str, str], dict]:
    """(kind, process) → {"env": what its container gets, "command": entrypoint and args}."""
    config_maps = {m["metadata"]["name"]: m.get("data", {}) for m in manifests if m["kind"] == "ConfigMap"}
    found = {}
    for m in manifests:
        if m["kind"] not in ("Deployment", "Job"):
            continue
        process = m["metadata"]["labels"]["app.kubernetes.io/name"]
        (container,) = m["spec"]["template"]["spec"]["containers"]
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            assert "configMapRef" in source, f"{process}: envFrom {source} is not resolved by this test"
            env.update(config_maps[source["configMapRef"]["name"]])
        for entry in container.get("env", []):
            if "value" in entry:
                env[entry["name"]] = str(entry["value"])
            elif ref := entry["valueFrom"].get("secretKeyRef"):
                env[entry["name"]] = secrets.get(ref["name"], ref["key"])
            else:
                ref = entry["valueFrom"]["configMapKeyRef"]
                env[entry["name"]] = config_maps[ref["name"]][ref["key"]]
        image = container["image"].rsplit("/", 1)[-1].split(":")[0].split("@")[0]
        found[m["kind"], process] = {"env": env, "command": [image, *container.get("args", [])]}
    return found


def load_settings(process: str, env: dict[str, str]) -> BaseSettings:
    """The process's settings from exactly `env` (nothing from this test's own environment)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        return settings_class(process)()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_rendered_variable_is_read_and_every_setting_is_rendered(render, environment: str) -> None:
    values = yaml.safe_load((ROOT / "deploy" / "environments" / environment / "values.yaml").read_text())
    found = workloads(render("crm-suite", environment), GeneratedSecrets())
    deployments = {p for kind, p in found if kind == "Deployment"}
    assert {"gateway", "identity", "customers", "contracts"} <= deployments
    settings = {}
    for (kind, process), workload in found.items():
        env = workload["env"]
        rendered = {name for name in env if name.startswith(("CRM_", "OTEL_"))}
        unread = rendered - variables_read(settings_class(process))
        assert not unread, f"{environment}: {kind} {process} is given {sorted(unread)}, which it never reads"
        loaded = load_settings(process, env)  # raises on a required setting missing or a bad value
        assert loaded.otlp_endpoint == values["global"]["env"].get("OTEL_EXPORTER_OTLP_ENDPOINT")
        assert loaded.stream_replicas == values["global"]["nats"]["streamReplicas"], (kind, process)
        if kind == "Deployment":
            settings[process] = loaded
            assert workload["command"][0] == f"crm-{process}", "the image is named like its console script"
    # Every service the gateway fronts is wired: a missing target answers 503 on all its routes.
    from crm_gateway.backends import BACKENDS

    gateway = settings["gateway"]
    assert {name for name in BACKENDS if not getattr(gateway, f"{name}_target")} == set()
    for process, loaded in settings.items():
        for field in type(loaded).model_fields:
            if field.endswith("_target") and process not in ("gateway", "identity"):
                assert getattr(loaded, field), f"{environment}: {process} has no CRM_{field.upper()}"
    identity = settings["identity"]
    assert (gateway.jwt_issuer, gateway.jwt_audience) == (identity.token_issuer, identity.token_audience), \
        "the gateway would refuse every token identity issues"


# -- the dev environment, run ------------------------------------------------------------------

# Ports of this test: a block of its own (the team's offset 9000 above the usual 8000-9xxx), each
# checked free and none handed out twice, unlike the kernel's ephemeral ports that other suites
# on this machine draw from too.
_PORTS = iter(range(17100, 17400))


def _free_port() -> int:
    for port in _PORTS:
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port left in this test's block")


def _localize(process: str, env: dict[str, str], addresses: dict[str, str], ports: dict[str, int]) -> dict[str, str]:
    """The rendered environment with cluster addresses mapped to loopback and this process's
    ports to free ones; anything still naming the cluster fails the test."""
    out = {}
    for name, value in env.items():
        for old, new in addresses.items():
            value = value.replace(old, new)
        out[name] = value
    for name in ("CRM_GRPC_PORT", "CRM_HTTP_PORT", "CRM_METRICS_PORT"):
        if name in out:
            out[name] = str(ports[f"{process}:{name}"])
    left = {n: v for n, v in out.items() if ".svc" in v or re.fullmatch(r"[a-z-]+:\d+", v)}
    assert not left, f"{process}: cluster addresses this test does not map: {left}"
    return out


@pytest.fixture
def embedded_nats(tmp_path: Path) -> Iterator[tuple[EmbeddedNats, GeneratedSecrets]]:
    secrets = GeneratedSecrets()
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "server.pem").write_text(secrets.server_cert)
    (tls / "server.key").write_text(secrets.server_key)
    config = nats_config(secrets.nats_passwords) + (
        f'tls {{\n  cert_file: "{tls / "server.pem"}"\n  key_file: "{tls / "server.key"}"\n}}\n')
    server = EmbeddedNats(tmp_path / "nats", _free_port(), _free_port(), extra_config=config).start()
    try:
        yield server, secrets
    finally:
        server.stop()


def test_dev_environment_runs_as_rendered(render, postgres_server, embedded_nats, tmp_path: Path) -> None:
    nats, secrets = embedded_nats
    manifests = render("crm-suite", "dev")
    found = workloads(manifests, secrets)
    processes = sorted(p for kind, p in found if kind == "Deployment")
    for process in processes:
        if ("Job", process) in found:
            secrets.database_urls[process] = postgres_server.create_database(f"crm_{process}_{os.urandom(3).hex()}")
    found = workloads(manifests, secrets)
    ports = {f"{p}:{name}": _free_port() for p in processes
             for name in ("CRM_GRPC_PORT", "CRM_HTTP_PORT", "CRM_METRICS_PORT")}
    addresses = {f"{NATS_HOST}:4222": f"127.0.0.1:{nats.port}",
                 # nothing listens there: export is attempted and fails fast
                 "otel-collector.observability.svc.cluster.local:4317": f"127.0.0.1:{_free_port()}",
                 **{f"{p}:50051": f"127.0.0.1:{ports[p + ':CRM_GRPC_PORT']}" for p in processes}}
    environments = {key: _localize(key[1], w["env"], addresses, ports) | {"HOME": str(tmp_path)}
                    for key, w in found.items()}

    for (kind, process), workload in sorted(found.items()):
        if kind == "Job":
            run = subprocess.run([str(BIN / workload["command"][0]), *workload["command"][1:]],
                                 env=environments[kind, process], capture_output=True, text=True, timeout=120)
            assert run.returncode == 0, f"{process} migration Job failed:\n{run.stderr[-3000:]}"

    logs = tmp_path / "logs"
    logs.mkdir()
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for process in [p for p in processes if p != "gateway"] + ["gateway"]:
            command = found["Deployment", process]["command"]
            with open(logs / f"{process}.log", "wb") as log:
                children[process] = subprocess.Popen(
                    [str(BIN / command[0]), *command[1:]], env=environments["Deployment", process],
                    stdout=log, stderr=subprocess.STDOUT)
        gateway = f"http://127.0.0.1:{ports['gateway:CRM_HTTP_PORT']}"

        def ready() -> bool:
            crashed = {p: c.returncode for p, c in children.items() if c.poll() is not None}
            if crashed:
                tails = {p: (logs / f"{p}.log").read_text()[-2000:] for p in crashed}
                pytest.fail(f"exited: {crashed}\n" + "\n".join(f"--- {p}\n{t}" for p, t in tails.items()))
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{gateway}/readyz", timeout=2).status_code == 200
            return False

        wait_until(ready, timeout=90, what="the gateway's /readyz", interval=0.5)
        with httpx.Client(base_url=gateway, timeout=10) as api:
            def signed_in() -> str | None:
                answer = api.post("/api/v1/auth/token", data={
                    "grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD})
                return answer.json()["access_token"] if answer.status_code == 200 else None

            deadline = time.monotonic() + 30  # identity creates the admin as it starts serving
            while (token := signed_in()) is None:
                assert time.monotonic() < deadline, "the bootstrap admin never could sign in"
                time.sleep(0.5)
            headers = {"Authorization": f"Bearer {token}"}
            created = api.post("/api/v1/customers", headers=headers, json={"name": "Rendered Suite Co"})
            assert created.status_code == 201, created.text
            read = api.get(f"/api/v1/customers/{created.json()['id']}", headers=headers)
            assert read.status_code == 200, read.text
            assert read.json()["name"] == "Rendered Suite Co"
            # contracts is reachable through the gateway (prod once answered 503 here)
            contracts = api.get("/api/v1/contracts", headers=headers)
            assert contracts.status_code == 200, contracts.text
    finally:
        for child in children.values():
            child.terminate()
        for child in children.values():
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
