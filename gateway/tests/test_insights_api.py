"""REST in front of the insights service: the dashboard within the caller's scope and level, targets
set by managers with ETags, and clear 4xx problems for bad input (R-DASH-01, R-DASH-06, R-UX-03)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from crm.billing.v1 import events_pb2 as billing_ev
from crm.common.v1 import money_pb2
from crm.contracts.v1 import events_pb2 as contracts_ev
from crm.customers.v1 import customers_pb2
from crm.customers.v1 import events_pb2 as customers_ev
from crm.insights.v1 import insights_pb2_grpc
from crm.opportunities.v1 import events_pb2 as opportunities_ev
from crm.opportunities.v1 import opportunities_pb2
from crm_gateway.main import create_app
from crm_gateway.settings import GatewaySettings
from crm_insights.adapters.grpc_api import InsightsServicer
from crm_insights.app import handlers
from crm_insights.domain.targets import Place
from crm_insights.main import SERVICE_NAME, migrate
from crmkit.auth import PrincipalVerifier
from crmkit.auth.keys import KeyPair, jwks_of
from crmkit.db import UnitOfWork, create_engine, session_factory
from crmkit.events.envelope import Event, build_headers, subject_of
from crmkit.grpc.server import GrpcServer
from crmkit.testing.principals import ADMIN, EAST_MANAGER, EAST_REP, WEST_REP
from crmkit.testing.servers import fresh_database

pytestmark = pytest.mark.integration

ISSUER, AUDIENCE = "crm-insights-tests", "crm-api"
READ, MANAGE = "insights.read", "targets.manage"
REP = dataclasses.replace(EAST_REP, permissions=(READ,))
OTHER_REP = dataclasses.replace(WEST_REP, permissions=(READ,))
MANAGER = dataclasses.replace(EAST_MANAGER, permissions=(READ, MANAGE))
OWNER = dataclasses.replace(ADMIN, permissions=(READ, MANAGE))
TODAY = dt.date.today()


class Org:
    """Identity's org chart as the insights service asks it: where the east team's people sit."""

    async def person(self, user_id: str) -> Place | None:
        return {"rep-east": Place("rep-east", "east", "/sales/east/"),
                "rep-west": Place("rep-west", "west", "/sales/west/")}.get(user_id)

    async def team(self, team_id: str) -> Place | None:
        return Place("", team_id, f"/sales/{team_id}/") if team_id in ("east", "west") else None


@pytest.fixture(scope="module")
async def insights(postgres_server: Any, principal_keys: KeyPair) -> AsyncIterator[tuple[Any, str]]:
    engine = create_engine(fresh_database(postgres_server, "gateway_insights", migrate), pool_size=5)
    sessions = session_factory(engine)
    server = GrpcServer("insights", PrincipalVerifier(principal_keys.public_pem))
    server.add(insights_pb2_grpc.add_InsightsServiceServicer_to_server, InsightsServicer(sessions, Org(), "CNY"),
               SERVICE_NAME)
    port = await server.start("127.0.0.1:0")
    yield sessions, f"127.0.0.1:{port}"
    await server.stop(0)
    await engine.dispose()


@pytest.fixture(scope="module")
async def api(insights: tuple[Any, str], nats_server: Any, token_keys: KeyPair,
              principal_keys: KeyPair) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings(customers_target="", insights_target=insights[1], nats_url=nats_server.url,
                               jwt_jwks=jwks_of(token_keys.public_pem), jwt_issuer=ISSUER, jwt_audience=AUDIENCE,
                               principal_private_key=principal_keys.private_pem, rpc_deadline_seconds=10.0)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test", timeout=30) as client:
            yield client


@pytest.fixture(scope="module")
def as_(token: Callable[..., str]) -> Callable[[Any], dict[str, str]]:
    return lambda principal: {"Authorization": f"Bearer {token(principal, issuer=ISSUER, audience=AUDIENCE)}"}


async def _deliver(sessions: Any, message: Any) -> None:
    event_id = str(uuid.uuid4())
    event = Event(id=event_id, subject=subject_of(message), type=message.DESCRIPTOR.full_name,
                  payload=message.SerializeToString(),
                  headers=build_headers(event_id=event_id, event_type=message.DESCRIPTOR.full_name, source="crm/test",
                                        actor="", subject_id="", time=dt.datetime.now(dt.UTC)))
    handler = {"crm.contracts.v1": handlers.on_contract_event, "crm.billing.v1": handlers.on_billing_event,
               "crm.customers.v1": handlers.on_customer_event,
               "crm.opportunities.v1": handlers.on_opportunity_event}[message.DESCRIPTOR.file.package]
    async with UnitOfWork(sessions, "crm/insights") as uow:
        await handler(uow, event)
        await uow.commit()


def _cny(amount: str) -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency="CNY")


async def test_the_dashboard_of_a_rep_and_their_manager(api, as_, insights) -> None:
    empty = await api.get("/api/v1/dashboard", headers=as_(REP))
    assert empty.status_code == 200, empty.text
    body = empty.json()
    assert (body["level"], body["period"], body["current"]["signed"], body["current"]["signing_target"]) == (
        "me", "month", {"amount": "0.00", "currency": "CNY"}, None)
    assert body["current"]["from_date"] == TODAY.replace(day=1).isoformat()

    customer = str(uuid.uuid4())
    signing = contracts_ev.ContractSigned(contract_id=str(uuid.uuid4()), customer_id=customer,
                                          amount=_cny("528840.00"), signed_by="rep-east", owner_id="rep-east",
                                          team_ids=["east"], department_path="/sales/east/")
    signing.sign_time.FromDatetime(dt.datetime.combine(TODAY, dt.time(), dt.UTC))
    await _deliver(insights[0], signing)
    await _deliver(insights[0], billing_ev.PaymentReceived(payment_id=str(uuid.uuid4()), customer_id=customer,
                                                           amount=_cny("100000.00"), received_on=TODAY.isoformat(),
                                                           owner_id="rep-east"))
    target = await api.post("/api/v1/targets", headers=as_(MANAGER), json={
        "kind": "signing", "level": "person", "subject_id": "rep-east", "period": "month",
        "period_start": TODAY.replace(day=1).isoformat(), "value": "1000000"})
    assert target.status_code == 201, target.text
    assert (target.headers["ETag"], target.json()["value"], target.json()["currency"]) == ('"v1"', "1000000.00", "CNY")

    mine = (await api.get("/api/v1/dashboard", headers=as_(REP))).json()["current"]
    assert (mine["signed"]["amount"], mine["signed_new_customers"]["amount"], mine["collected"]["amount"],
            mine["signing_target"]["amount"], mine["completion_percent"], mine["collected_of_signed_percent"],
            mine["new_customers"]) == ("528840.00", "528840.00", "100000.00", "1000000.00", "52.88", "18.91", 1)
    team = (await api.get("/api/v1/dashboard", headers=as_(MANAGER), params={"level": "team"})).json()
    assert team["level"] == "team" and team["current"]["signed"]["amount"] == "528840.00"
    assert [(e["person_id"], e["rank"], e["previous_rank"], e["rank_change"]) for e in team["leaderboard"]] == [
        ("rep-east", 1, None, None)]
    others = (await api.get("/api/v1/dashboard", headers=as_(OTHER_REP))).json()["current"]
    assert others["signed"]["amount"] == "0.00"


async def test_bad_dashboard_requests_are_clear_4xx(api, as_) -> None:
    outside = await api.get("/api/v1/dashboard", headers=as_(REP), params={"level": "company"})
    assert outside.status_code == 403 and outside.json()["reason"] == "LEVEL_OUT_OF_SCOPE", outside.text
    backwards = await api.get("/api/v1/dashboard", headers=as_(OWNER),
                              params={"period": "custom", "from": "2026-03-20", "to": "2026-03-01"})
    assert backwards.status_code == 422 and "before it starts" in backwards.text, backwards.text
    assert (await api.get("/api/v1/dashboard", headers=as_(OWNER), params={"period": "week"})).status_code == 422
    year = await api.get("/api/v1/dashboard", headers=as_(OWNER), params={"period": "year", "on": "2020-06-01"})
    assert year.status_code == 200 and year.json()["current"]["from_date"] == "2020-01-01"
    assert year.json()["same_period_last_year"]["from_date"] == "2019-01-01"


async def test_targets_are_managed_within_scope_with_etags(api, as_) -> None:
    start = (TODAY.replace(day=1) - dt.timedelta(days=1)).replace(day=1).isoformat()
    body = {"kind": "collection", "level": "person", "subject_id": "rep-east", "period": "month",
            "period_start": start, "value": "300000.00"}
    assert (await api.post("/api/v1/targets", headers=as_(REP), json=body)).status_code == 403
    west = await api.post("/api/v1/targets", headers=as_(MANAGER), json={**body, "subject_id": "rep-west"})
    assert west.status_code == 403 and west.json()["reason"] == "TARGET_OUT_OF_SCOPE", west.text
    negative = await api.post("/api/v1/targets", headers=as_(MANAGER), json={**body, "value": "-5"})
    assert negative.status_code == 422 and "negative" in negative.text, negative.text
    mid_month = await api.post("/api/v1/targets", headers=as_(MANAGER), json={**body, "period_start": "2026-05-02"})
    assert mid_month.status_code == 422, mid_month.text
    created = await api.post("/api/v1/targets", headers=as_(MANAGER), json=body)
    assert created.status_code == 201, created.text
    again = await api.post("/api/v1/targets", headers=as_(MANAGER), json=body)
    assert again.status_code == 409 and again.json()["reason"] == "TARGET_ALREADY_SET"
    url = created.headers["Location"]
    changed = await api.patch(url, headers=as_(MANAGER) | {"If-Match": created.headers["ETag"]},
                              json={"value": "350000"})
    assert changed.status_code == 200 and changed.headers["ETag"] == '"v2"', changed.text
    stale = await api.patch(url, headers=as_(MANAGER) | {"If-Match": created.headers["ETag"]}, json={"value": "1"})
    assert stale.status_code == 412
    listed = (await api.get("/api/v1/targets", headers=as_(REP), params={"period_start": start})).json()["items"]
    assert [(t["kind"], t["value"]) for t in listed] == [("collection", "350000.00")]
    assert (await api.get("/api/v1/targets", headers=as_(OTHER_REP), params={"period_start": start})).json() == {
        "items": []}
    assert (await api.delete(url, headers=as_(MANAGER))).status_code == 204
    assert (await api.delete(url, headers=as_(MANAGER))).status_code == 404


async def test_key_renewals_and_the_pipeline_matrix(api, as_, insights) -> None:
    customer = str(uuid.uuid4())
    signing = contracts_ev.ContractSigned(contract_id=str(uuid.uuid4()), customer_id=customer,
                                          amount=_cny("75000.00"), signed_by="rep-east", owner_id="rep-east",
                                          team_ids=["east"], department_path="/sales/east/",
                                          end_date=(TODAY + dt.timedelta(days=90)).isoformat())
    signing.sign_time.FromDatetime(dt.datetime.combine(TODAY - dt.timedelta(days=270), dt.time(), dt.UTC))
    await _deliver(insights[0], signing)
    await _deliver(insights[0], customers_ev.CustomerCreated(customer=customers_pb2.Customer(
        id=customer, name="Wuxi Gear Works", owner_id="rep-east", team_id="east", department_path="/sales/east/",
        version=1)))
    await _deliver(insights[0], opportunities_ev.OpportunityCreated(opportunity=opportunities_pb2.Opportunity(
        id=str(uuid.uuid4()), customer_id=customer, pipeline_id="standard", stage_id="quote",
        amount=_cny("60000.00"), probability=50, status=opportunities_pb2.OPPORTUNITY_STATUS_OPEN,
        owner_id="rep-east", team_id="east", department_path="/sales/east/", version=1)))

    renewals = await api.get("/api/v1/dashboard/key-renewals", headers=as_(REP))
    assert renewals.status_code == 200, renewals.text
    [renewal] = [r for r in renewals.json()["items"] if r["customer_id"] == customer]
    assert (renewal["customer_name"], renewal["signed_two_years"]["amount"], renewal["open_opportunities"],
            renewal["last_follow_up_at"]) == ("Wuxi Gear Works", "75000.00", 1, None)
    assert (await api.get("/api/v1/dashboard/key-renewals", headers=as_(OTHER_REP))).json() == {"items": []}
    assert (await api.get("/api/v1/dashboard/key-renewals", headers=as_(REP), params={"limit": 0})).status_code == 422

    matrix = await api.get("/api/v1/dashboard/pipeline", headers=as_(MANAGER))
    assert matrix.status_code == 200, matrix.text
    assert matrix.json()["level"] == "team"
    assert [(c["stage_id"], c["person_id"], c["count"], c["amount"]["amount"], c["weighted_amount"]["amount"])
            for c in matrix.json()["cells"]] == [("quote", "rep-east", 1, "60000.00", "30000.00")]
    denied = await api.get("/api/v1/dashboard/pipeline", headers=as_(REP), params={"level": "company"})
    assert denied.status_code == 403 and denied.json()["reason"] == "LEVEL_OUT_OF_SCOPE"
