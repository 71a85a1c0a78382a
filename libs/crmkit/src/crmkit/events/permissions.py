"""Who may do what on the bus: one NATS user per process, with subject permissions.

A service publishes only its own events (`crm.<service>.>`, stored in its stream) and dead letters
of its own consumers, and reads only the streams it consumes, through its own durable consumers;
the JetStream API subjects it may call are narrowed the same way (its stream, its consumers, its
key-value buckets, the dead-letter stream). Replies come to a per-user inbox prefix
(`_INBOX_<user>`), so no user can listen to another's replies. The server enforces streams and
consumer names; which subjects of a consumed stream a consumer filters is the service's own code.

`SUITE` is the one declaration of what each process consumes; the devstack writes it into the
embedded server's `authorization` block (`nats_config`) and `python -m crmkit.events.permissions
helm-values` renders it for the official NATS Helm chart. `serve()` refuses to start a service
whose subscriptions are not covered here (`check_subscriptions`): a new subscription stops the
service at its start, naming the line to add, instead of failing on the bus later.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from crmkit.events.envelope import stream_of_service
from crmkit.events.streams import DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM

API = "$JS.API"
# A development-only user with every right, for tests and the `nats` CLI (never in the charts).
DEV_ADMIN = "crm-admin"


def inbox_prefix(user: str) -> str:
    """Where replies to `user`'s requests arrive; nobody else may subscribe there."""
    return f"_INBOX_{user}"


@dataclass(frozen=True)
class Consumer:
    """A durable pull consumer `durable` on `stream`."""

    stream: str
    durable: str


@dataclass(frozen=True)
class BusUser:
    """What one process may do on the bus. `stream` is the stream it owns (None for the gateway)."""

    name: str
    stream: str | None = None
    consumers: tuple[Consumer, ...] = ()
    # Streams read through ephemeral ordered consumers (push, flow-controlled).
    follows: tuple[str, ...] = ()
    # Plain NATS subjects it subscribes to (no JetStream).
    listens: tuple[str, ...] = ()
    # Subjects of other producers' streams it may publish to (documented exceptions).
    also_publishes: tuple[str, ...] = ()
    kv_buckets: tuple[str, ...] = ()

    def publish_allow(self) -> list[str]:
        allow: list[str] = []
        if self.stream is not None:
            allow += [f"crm.{self.name}.>", *_stream_admin(self.stream), *_stream_admin(DEAD_LETTER_STREAM)]
        allow += self.also_publishes
        for c in self.consumers:
            allow += [f"{API}.CONSUMER.CREATE.{c.stream}.{c.durable}",
                      f"{API}.CONSUMER.CREATE.{c.stream}.{c.durable}.>",
                      f"{API}.CONSUMER.DURABLE.CREATE.{c.stream}.{c.durable}",
                      f"{API}.CONSUMER.INFO.{c.stream}.{c.durable}",
                      f"{API}.CONSUMER.MSG.NEXT.{c.stream}.{c.durable}",
                      f"$JS.ACK.{c.stream}.{c.durable}.>",
                      f"{DEAD_LETTER_PREFIX}.{c.durable}"]
        for stream in self.follows:
            allow += _ephemeral(stream)
        for bucket in self.kv_buckets:
            stream = f"KV_{bucket}"
            allow += [*_stream_admin(stream), f"$KV.{bucket}.>", f"{API}.DIRECT.GET.{stream}",
                      f"{API}.DIRECT.GET.{stream}.>", f"{API}.STREAM.MSG.GET.{stream}", *_ephemeral(stream)]
        return _unique(allow)

    def subscribe_allow(self) -> list[str]:
        return _unique([f"{inbox_prefix(self.name)}.>", *self.listens])

    def permissions(self) -> dict[str, object]:
        return {"publish": {"allow": self.publish_allow()}, "subscribe": {"allow": self.subscribe_allow()},
                # Replies to its own requests only; it answers nobody's requests.
                "allow_responses": False}

    def grants(self, subscription_stream: str, durable: str) -> bool:
        return Consumer(subscription_stream, durable) in self.consumers


def _stream_admin(stream: str) -> list[str]:
    return [f"{API}.STREAM.INFO.{stream}", f"{API}.STREAM.CREATE.{stream}", f"{API}.STREAM.UPDATE.{stream}"]


def _ephemeral(stream: str) -> list[str]:
    """An ordered consumer: created unnamed or named with a filter, flow control answered, and
    deleted (it is the reader's own; a durable of another reader cannot be named by it: the
    server generates the names of ephemeral consumers)."""
    return [f"{API}.CONSUMER.CREATE.{stream}", f"{API}.CONSUMER.CREATE.{stream}.*.>",
            f"{API}.CONSUMER.INFO.{stream}.*", f"$JS.FC.{stream}.>"]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _service(name: str, consumes: Mapping[str, Iterable[str]] = {}, **more: object) -> BusUser:
    consumers = tuple(Consumer(stream, durable) for stream, durables in consumes.items() for durable in durables)
    return BusUser(name=name, stream=stream_of_service(name), consumers=consumers, **more)  # type: ignore[arg-type]


PRODUCERS = ("identity", "customers", "opportunities", "contracts", "orders", "billing", "notifications", "sap",
             "insights")
# The audit trail takes every event of every producer (identity's `audit_subscriptions`).
_AUDITED = {stream_of_service(p): [f"identity-audit-{stream_of_service(p).lower().replace('_', '-')}"]
            for p in PRODUCERS}

# Customer reassignments and merges: open work follows the customer (docs/architecture.md).
_OWNERSHIP = ("reassigned", "merged")

SUITE: dict[str, BusUser] = {u.name: u for u in (
    _service("identity", _AUDITED, kv_buckets=("crm_audit_anchors",)),
    _service("customers", {"CRM_CONTRACTS": ["customers-contract-signed"],
                           "CRM_OPPORTUNITIES": ["customers-opportunity-won"]}),
    _service("opportunities", {"CRM_CUSTOMERS": [f"opportunities-customer-{e}" for e in _OWNERSHIP]}),
    _service("contracts", {"CRM_OPPORTUNITIES": ["contracts-quote-accepted"],
                           "CRM_CUSTOMERS": [f"contracts-customer-{e}" for e in (*_OWNERSHIP, "updated")]}),
    _service("orders", {"CRM_CONTRACTS": ["orders-contracts"], "CRM_SAP": ["orders-sap"],
                        "CRM_BILLING": ["orders-billing"], "CRM_CUSTOMERS": ["orders-customers"]}),
    _service("billing", {"CRM_CONTRACTS": ["billing-contract-signed", "billing-contract-amended",
                                           "billing-contract-terminated"],
                         "CRM_ORDERS": ["billing-orders"], "CRM_CUSTOMERS": ["billing-customers"],
                         "CRM_SAP": ["billing-sap-billing-documents"]}),
    _service("notifications", {s: [f"notifications-{s.removeprefix('CRM_').lower()}"]
                               for s in ("CRM_CONTRACTS", "CRM_BILLING", "CRM_SAP", "CRM_CUSTOMERS")}),
    _service("sap", {"CRM_CUSTOMERS": ["sap-customers"], "CRM_ORDERS": ["sap-orders"]}),
    _service("insights", {"CRM_CONTRACTS": ["insights-contracts"], "CRM_CUSTOMERS": ["insights-customers"],
                          "CRM_BILLING": ["insights-billing"], "CRM_OPPORTUNITIES": ["insights-opportunities"]}),
    # No stream of its own: it follows revocations, pushes inbox items as they are created, keeps
    # idempotency keys in a bucket, and reports denied access into identity's audit stream.
    BusUser(name="gateway", follows=("CRM_IDENTITY",), listens=("crm.notifications.inbox.created",),
            also_publishes=("crm.identity.access.denied",), kv_buckets=("crm_gateway_idempotency",)),
)}


class UndeclaredSubscription(RuntimeError):
    pass


def check_subscriptions(service: str, subscriptions: Iterable[object]) -> None:
    """Raises when a service subscribes to something its bus user is not granted in `SUITE`."""
    user = SUITE.get(service)
    missing = [f"{s.stream}/{s.name}" for s in subscriptions  # type: ignore[attr-defined]
               if user is None or not user.grants(s.stream, s.name)]  # type: ignore[attr-defined]
    if missing:
        raise UndeclaredSubscription(f"{service} subscribes to {', '.join(missing)}, which its NATS user may "
                                     "not read: declare them in crmkit.events.permissions.SUITE")


def nats_config(passwords: Mapping[str, str]) -> str:
    """The `authorization` block of a nats-server config: one user per entry of `passwords`
    (a `SUITE` name, or `DEV_ADMIN` with every right). Anonymous connections are refused."""
    users = []
    for name, password in passwords.items():
        entry: dict[str, object] = {"user": name, "password": password}
        if name != DEV_ADMIN:
            entry["permissions"] = SUITE[name].permissions()
        users.append(entry)
    return "authorization: " + json.dumps({"users": users}, indent=2) + "\n"


CREDENTIALS_SECRET = "crm-nats-credentials"  # noqa: S105 - a Secret's name
SERVER_TLS_SECRET = "nats-server-tls"  # noqa: S105 - a Secret's name


def helm_values(cluster_size: int = 3) -> dict[str, object]:
    """Values for the official NATS Helm chart (1.x): TLS on the client port (certificate in
    Secret SERVER_TLS_SECRET, from cert-manager) and one user per process, each password read
    from key `<user>` of Secret CREDENTIALS_SECRET (the key the CRM charts give that service as
    CRM_NATS_PASSWORD). No user may connect anonymously."""
    env_name = {name: f"CRM_NATS_PASSWORD_{name.upper()}" for name in SUITE}
    users = [{"user": name, "password": f"<< ${env_name[name]} >>", "permissions": user.permissions()}
             for name, user in SUITE.items()]
    return {
        "config": {
            "cluster": {"enabled": cluster_size > 1, "replicas": cluster_size},
            "jetstream": {"enabled": True, "fileStore": {"pvc": {"size": "50Gi"}},
                          "merge": {"sync_interval": "always"}},
            "nats": {"tls": {"enabled": True, "secretName": SERVER_TLS_SECRET}},
            "merge": {"authorization": {"users": users}},
        },
        "container": {"env": {env_name[name]: {"valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": name}}}
                              for name in SUITE}},
        "promExporter": {"enabled": True},
    }


def helm_values_yaml(cluster_size: int) -> str:
    import yaml

    return (f"# Generated by `python -m crmkit.events.permissions helm-values {cluster_size}` from\n"
            "# crmkit.events.permissions.SUITE; do not edit. Values for the official NATS Helm chart (1.x):\n"
            "# see docs/deployment.md, \"NATS\".\n"
            + yaml.safe_dump(helm_values(cluster_size), sort_keys=False, width=120))


def main(argv: list[str] | None = None) -> None:
    """`python -m crmkit.events.permissions helm-values <cluster size>`: the NATS chart values."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "helm-values" or not args[1].isdigit():
        sys.exit("usage: python -m crmkit.events.permissions helm-values <cluster size>")
    sys.stdout.write(helm_values_yaml(int(args[1])))


if __name__ == "__main__":
    main()
