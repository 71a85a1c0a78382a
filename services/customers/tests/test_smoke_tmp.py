from crmkit.testing.principals import EAST_REP
from crm_customers.app import use_cases


async def test_create_and_get(uow):
    async with uow() as u:
        c = await use_cases.create_customer(u, EAST_REP, {"name": "Acme", "tags": ("a",)})
    async with uow() as u:
        got = await use_cases.get_customer(u, EAST_REP, c.id)
    assert got.name == "Acme"
