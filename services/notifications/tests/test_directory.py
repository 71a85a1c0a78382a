"""The identity directory against the real identity service (in-process, real PostgreSQL),
called with this service's own signed principal as `runtime.internal_channel` does: a person's
email and locale, their direct manager, every holder of a role across the organisation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from crm.identity.v1 import identity_pb2_grpc
from crm_identity.adapters.grpc_api import PUBLIC_METHODS, SERVICE_NAME, IdentityServicer
from crm_identity.app import org
from crm_identity.app.credentials import SigningKeys
from crm_identity.app.tokens import TokenConfig
from crm_identity.domain.model import UserStatus
from crm_identity.main import migrate as migrate_identity
from crm_notifications.adapters.directory import IdentityDirectory
from crmkit.auth import DataScope, Principal, PrincipalVerifier, ServiceToken
from crmkit.auth.keys import generate_keypair
from crmkit.db import UnitOfWork, create_engine, session_factory
from crmkit.grpc.client import channel
from crmkit.grpc.server import GrpcServer

pytestmark = pytest.mark.integration

ADMIN = Principal(subject="00000000-0000-7000-8000-000000000001", roles=("admin",), permissions=("*",),
                  data_scope=DataScope.ALL)
PASSWORD = "Lingbo-demo-2026"


@pytest.fixture
async def org_chart(database_factory) -> AsyncIterator[dict[str, Any]]:
    """Company (root) > Finance; boss manages rep; two finance holders, one in each department,
    and a disabled one."""
    engine = create_engine(database_factory("identity", migrate_identity), pool_size=3)
    sessions = session_factory(engine)

    async def run(use_case: Any, *args: Any, **kwargs: Any) -> Any:
        async with UnitOfWork(sessions, "crm/identity", actor=ADMIN.subject) as uow:
            return await use_case(uow, ADMIN, *args, **kwargs)

    async with UnitOfWork(sessions, "crm/identity", actor="system") as uow:
        await org.bootstrap_admin(uow, PASSWORD)
    [root] = [d for d in (await run(org.list_departments, limit=10, page_token=""))[0] if d.parent_id is None]
    finance = await run(org.create_department, name="Finance", parent_id=root.id, head_user_id=None)

    async def user(login: str, **fields: Any) -> Any:
        return await run(org.create_user, {"login": login, "display_name": login.title(),
                                           "email": f"{login}@lingbo.test", "department_id": root.id} | fields,
                         PASSWORD)

    boss = await user("boss", locale="en")
    rep = await user("rep", manager_id=boss.id)
    fin_a = await user("fin.a", roles=("finance",), department_id=finance.id)
    fin_b = await user("fin.b", roles=("finance",))
    gone = await user("fin.gone", roles=("finance",), status=UserStatus.DISABLED)
    service_key, gateway_key, signing = generate_keypair(), generate_keypair(), generate_keypair()
    server = GrpcServer("identity", PrincipalVerifier(gateway_key.public_pem, service_pems=(service_key.public_pem,)),
                        PUBLIC_METHODS)
    server.add(identity_pb2_grpc.add_IdentityServiceServicer_to_server,
               IdentityServicer(sessions, TokenConfig(keys=SigningKeys((signing.private_pem,)), issuer="i",
                                                      audience="a", access_ttl=600)), SERVICE_NAME)
    port = await server.start("127.0.0.1:0")
    ch = channel(f"127.0.0.1:{port}", ServiceToken("notifications", service_key.private_pem))
    yield {"directory": IdentityDirectory(ch), "boss": boss, "rep": rep, "fin": {fin_a.id, fin_b.id},
           "fin_a": fin_a, "finance": finance, "gone": gone}
    await ch.close()
    await server.stop(0)
    await engine.dispose()


async def test_people_managers_and_role_holders_come_from_identity(org_chart) -> None:
    directory: IdentityDirectory = org_chart["directory"]
    boss, rep = org_chart["boss"], org_chart["rep"]
    person = await directory.person(str(rep.id))
    assert person is not None and (person.email, person.display_name) == ("rep@lingbo.test", "Rep")
    assert (await directory.person(str(boss.id))).locale == "en"  # type: ignore[union-attr]
    assert [m.id for m in await directory.managers(str(rep.id))] == [str(boss.id)]
    assert await directory.managers(str(boss.id)) == []
    holders = await directory.role_holders("finance")
    assert {h.id for h in holders} == {str(i) for i in org_chart["fin"]}  # the disabled holder is not there
    assert await directory.person(str(org_chart["gone"].id)) is None
    assert await directory.person("00000000-0000-7000-8000-00000000dead") is None
    assert await directory.person("not-a-user-id") is None


async def test_what_a_person_may_read_comes_from_their_roles_in_identity(org_chart) -> None:
    directory: IdentityDirectory = org_chart["directory"]
    fin_a = await directory.person(str(org_chart["fin_a"].id))
    assert fin_a is not None and fin_a.access is not None
    assert fin_a.access.may("billing.read") and not fin_a.access.may("org.manage")
    assert fin_a.access.data_scope == DataScope.SIGNED
    assert fin_a.access.department_path == org_chart["finance"].path
    rep = await directory.person(str(org_chart["rep"].id))
    assert rep is not None and rep.access is not None and rep.access.permissions == ()
    assert rep.access.data_scope == DataScope.OWN
    finance = await directory.role_access("finance")
    assert finance is not None and finance.may("billing.read") and finance.data_scope == DataScope.SIGNED
    assert await directory.role_access("no-such-role") is None
    holders = await directory.role_holders("finance")
    assert all(h.access is not None and h.access.may("billing.read") for h in holders)
