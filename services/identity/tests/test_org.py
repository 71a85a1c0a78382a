"""The org chart through the real gRPC server: departments and subtree moves, users and their
managers, the approval-chain queries, roles, and permission checks inside the service."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from crm.identity.v1 import identity_pb2 as pb

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


async def dept(admin, name: str, parent: str = "", head: str = "") -> pb.Department:
    return (await admin.CreateDepartment(pb.CreateDepartmentRequest(
        department=pb.Department(name=name, parent_id=parent, head_user_id=head)))).department


async def user(admin, login: str, department: str = "", manager: str = "", roles: tuple[str, ...] = ("sales_rep",)):
    return (await admin.CreateUser(pb.CreateUserRequest(user=pb.User(
        login=login, display_name=login.title(), department_id=department, manager_id=manager, roles=list(roles)),
        initial_password=PASSWORD))).user


async def set_manager(admin, user_id: str, manager_id: str) -> pb.User:
    return (await admin.UpdateUser(pb.UpdateUserRequest(user=pb.User(id=user_id, manager_id=manager_id),
                                                        update_mask=FieldMask(paths=["manager_id"])))).user


async def test_manager_chain_levels_and_cycles(admin, stub_for, principals, rpc_error, outbox) -> None:
    root = await dept(admin, "Company")
    ceo = await user(admin, "ceo", root.id, roles=("general_manager",))
    director = await user(admin, "director", root.id, ceo.id, ("sales_director",))
    manager = await user(admin, "manager", root.id, director.id, ("sales_manager",))
    rep = await user(admin, "rep", root.id, manager.id)

    service = stub_for(principals.service)
    chain = (await service.GetManagerChain(pb.GetManagerChainRequest(user_id=rep.id))).managers
    assert [u.login for u in chain] == ["manager", "director", "ceo"]
    chain = (await service.GetManagerChain(pb.GetManagerChainRequest(user_id=rep.id, max_levels=2))).managers
    assert [u.login for u in chain] == ["manager", "director"]
    assert list((await service.GetManagerChain(pb.GetManagerChainRequest(user_id=ceo.id))).managers) == []

    for manager_id in (rep.id, ceo.id):           # the CEO under someone who reports to them; oneself
        error = await rpc_error(set_manager(admin, ceo.id, manager_id))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    updated = await set_manager(admin, rep.id, director.id)
    assert updated.manager_id == director.id and updated.version == 2
    last = [r for r in await outbox() if r.type == "crm.identity.v1.UserUpdated"][-1].message()
    assert list(last.changed_fields) == ["manager_id"] and last.before.manager_id == manager.id


async def test_department_head_falls_back_to_the_nearest_ancestor(admin, stub_for, principals, rpc_error) -> None:
    root = await dept(admin, "Company")
    ceo = await user(admin, "ceo", root.id, roles=("general_manager",))
    await admin.UpdateDepartment(pb.UpdateDepartmentRequest(
        department=pb.Department(id=root.id, head_user_id=ceo.id), update_mask=FieldMask(paths=["head_user_id"])))
    sales = await dept(admin, "Sales", root.id)
    east = await dept(admin, "East", sales.id)
    service = stub_for(principals.service)
    answer = await service.GetDepartmentHead(pb.GetDepartmentHeadRequest(department_id=east.id))
    assert (answer.head.login, answer.department_id) == ("ceo", root.id)
    director = await user(admin, "director", sales.id, roles=("sales_director",))
    await admin.UpdateDepartment(pb.UpdateDepartmentRequest(
        department=pb.Department(id=sales.id, head_user_id=director.id), update_mask=FieldMask(paths=["head_user_id"])))
    answer = await service.GetDepartmentHead(pb.GetDepartmentHeadRequest(department_id=east.id))
    assert (answer.head.login, answer.department_id) == ("director", sales.id)

    error = await rpc_error(admin.CreateDepartment(pb.CreateDepartmentRequest(department=pb.Department(name="Two"))))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION         # one root


async def test_role_holders_with_and_without_subtree(admin, stub_for, principals) -> None:
    root = await dept(admin, "Company")
    sales = await dept(admin, "Sales", root.id)
    east = await dept(admin, "East", sales.id)
    await user(admin, "mgr.sales", sales.id, roles=("sales_manager",))
    await user(admin, "mgr.east", east.id, roles=("sales_manager",))
    await user(admin, "rep.east", east.id)
    gone = await user(admin, "mgr.gone", east.id, roles=("sales_manager",))
    await admin.UpdateUser(pb.UpdateUserRequest(user=pb.User(id=gone.id, status=pb.USER_STATUS_DISABLED),
                                                update_mask=FieldMask(paths=["status"])))
    service = stub_for(principals.service)
    only = await service.ListRoleHolders(pb.ListRoleHoldersRequest(role="sales_manager", department_id=sales.id))
    assert [u.login for u in only.users] == ["mgr.sales"]
    subtree = await service.ListRoleHolders(pb.ListRoleHoldersRequest(role="sales_manager", department_id=sales.id,
                                                                      include_subtree=True))
    assert [u.login for u in subtree.users] == ["mgr.east", "mgr.sales"]


async def test_moving_a_department_rewrites_its_subtree_and_refuses_cycles(admin, rpc_error, outbox) -> None:
    root = await dept(admin, "Company")
    sales = await dept(admin, "Sales", root.id)
    east = await dept(admin, "East", sales.id)
    north = await dept(admin, "North", east.id)
    regions = await dept(admin, "Regions", root.id)
    error = await rpc_error(admin.UpdateDepartment(pb.UpdateDepartmentRequest(
        department=pb.Department(id=sales.id, parent_id=north.id), update_mask=FieldMask(paths=["parent_id"]))))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    moved = (await admin.UpdateDepartment(pb.UpdateDepartmentRequest(
        department=pb.Department(id=east.id, parent_id=regions.id), update_mask=FieldMask(paths=["parent_id"])))
    ).department
    assert moved.path == f"{regions.path}{east.id}/"
    listed = {d.id: d.path for d in (await admin.ListDepartments(pb.ListDepartmentsRequest())).departments}
    assert listed[north.id] == f"{regions.path}{east.id}/{north.id}/"
    changed = [r.message() for r in await outbox() if r.type == "crm.identity.v1.DepartmentChanged"][-2:]
    assert [c.after.id for c in changed] == [east.id, north.id] and changed[1].before.path == north.path
    page = await admin.ListDepartments(pb.ListDepartmentsRequest(page_size=2))
    rest = await admin.ListDepartments(pb.ListDepartmentsRequest(page_size=10, page_token=page.next_page_token))
    assert len(page.departments) == 2 and len(rest.departments) == 3 and not rest.next_page_token


async def test_permissions_are_checked_inside_the_service(admin, stub_for, principals, rpc_error) -> None:
    root = await dept(admin, "Company")
    rep = stub_for(principals.rep)
    error = await rpc_error(rep.CreateUser(pb.CreateUserRequest(
        user=pb.User(login="intruder", display_name="X", roles=["admin"]), initial_password=PASSWORD)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    for call in (rep.CreateDepartment(pb.CreateDepartmentRequest(
                     department=pb.Department(name="X", parent_id=root.id))),
                 rep.ListAuditEntries(pb.ListAuditEntriesRequest()),
                 rep.VerifyAuditTrail(pb.VerifyAuditTrailRequest()),
                 rep.ListPartnerClients(pb.ListPartnerClientsRequest()),
                 stub_for(principals.auditor).CreateRole(pb.CreateRoleRequest(role=pb.Role(
                     name="x", data_scope=pb.DATA_SCOPE_OWN)))):
        assert (await rpc_error(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await rep.ListDepartments(pb.ListDepartmentsRequest())).departments   # org.read


async def test_users_and_roles_round_trip(admin, rpc_error, outbox) -> None:
    root = await dept(admin, "Company")
    created = await user(admin, "zhang.min", root.id, roles=("finance",))
    assert created.status == pb.USER_STATUS_ACTIVE and created.version == 1 and not created.locked
    dup = await rpc_error(admin.CreateUser(pb.CreateUserRequest(user=pb.User(login="Zhang.Min", display_name="Z"),
                                                                initial_password=PASSWORD)))
    assert dup.code() == grpc.StatusCode.ALREADY_EXISTS
    weak = await rpc_error(admin.CreateUser(pb.CreateUserRequest(user=pb.User(login="wang", display_name="W"),
                                                                 initial_password="short")))
    assert weak.code() == grpc.StatusCode.INVALID_ARGUMENT
    stale = await rpc_error(admin.UpdateUser(pb.UpdateUserRequest(
        user=pb.User(id=created.id, display_name="Z M"), update_mask=FieldMask(paths=["display_name"]),
        expected_version=7)))
    assert stale.code() == grpc.StatusCode.ABORTED
    by_role = await admin.ListUsers(pb.ListUsersRequest(role="finance"))
    assert [u.login for u in by_role.users] == ["zhang.min"]

    roles = {r.name: r for r in (await admin.ListRoles(pb.ListRolesRequest())).roles}
    # The migrations seed exactly the built-in roles the code describes.
    from crm_identity.domain.model import BUILT_IN_ROLES
    assert {r.name: sorted(r.permissions) for r in roles.values() if r.built_in} == {
        r.name: sorted(r.permissions) for r in BUILT_IN_ROLES}
    assert roles["finance"].data_scope == pb.DATA_SCOPE_SIGNED and roles["finance"].built_in
    assert roles["sales_manager"].data_scope == pb.DATA_SCOPE_TEAM
    role = (await admin.CreateRole(pb.CreateRoleRequest(role=pb.Role(
        name="key_account", permissions=["customers.read", "customers.write"],
        data_scope=pb.DATA_SCOPE_DEPARTMENT)))).role
    assert not role.built_in
    bad = await rpc_error(admin.CreateRole(pb.CreateRoleRequest(role=pb.Role(
        name="bogus", permissions=["rockets.launch"], data_scope=pb.DATA_SCOPE_OWN))))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    updated = (await admin.UpdateRole(pb.UpdateRoleRequest(
        role=pb.Role(name="key_account", data_scope=pb.DATA_SCOPE_ALL),
        update_mask=FieldMask(paths=["data_scope"])))).role
    assert updated.data_scope == pb.DATA_SCOPE_ALL
    changed = [r.message() for r in await outbox() if r.type == "crm.identity.v1.RoleChanged"][-1]
    assert changed.before.data_scope == pb.DATA_SCOPE_DEPARTMENT and changed.after.data_scope == pb.DATA_SCOPE_ALL
    assert "password" not in str([r.message() for r in await outbox() if r.type == "crm.identity.v1.UserCreated"])


async def test_users_filter_by_login_and_by_part_of_the_name(admin) -> None:
    root = await dept(admin, "Company")
    for login in ("li.wei", "li.na", "wang_li", "zhou.qiang"):
        await user(admin, login, root.id)
    by_login = await admin.ListUsers(pb.ListUsersRequest(login="li.wei"))
    assert [u.login for u in by_login.users] == ["li.wei"]
    by_name = await admin.ListUsers(pb.ListUsersRequest(name="LI."))     # case-insensitive, part of it
    assert [u.login for u in by_name.users] == ["li.na", "li.wei"]
    underscore = await admin.ListUsers(pb.ListUsersRequest(name="_"))    # a literal, not a wildcard
    assert [u.login for u in underscore.users] == ["wang_li"]
    assert list((await admin.ListUsers(pb.ListUsersRequest(login="li"))).users) == []


async def test_me_tells_the_caller_where_they_sit_without_any_permission(admin, stub_for, rpc_error) -> None:
    from crmkit.auth import Principal

    root = await dept(admin, "Company")
    sales = await dept(admin, "Sales", root.id)
    manager = await user(admin, "chen.jie", sales.id, roles=("sales_manager",))
    team = (await admin.CreateTeam(pb.CreateTeamRequest(
        team=pb.Team(name="Sales East", department_id=sales.id, lead_user_id=manager.id)))).team
    rep = await user(admin, "li.wei", sales.id, manager.id)
    await admin.UpdateUser(pb.UpdateUserRequest(user=pb.User(id=rep.id, team_ids=[team.id]),
                                                update_mask=FieldMask(paths=["team_ids"])))

    me = await stub_for(Principal(subject=rep.id, roles=("sales_rep",))).GetMe(pb.GetMeRequest())
    assert me.user.login == "li.wei" and me.department.name == "Sales"
    assert [t.name for t in me.teams] == ["Sales East"] and me.manager.login == "chen.jie"
    top = await stub_for(Principal(subject=manager.id)).GetMe(pb.GetMeRequest())
    assert not top.HasField("manager") and list(top.teams) == []

    client = await rpc_error(stub_for(Principal(subject="erp-client", kind="client")).GetMe(pb.GetMeRequest()))
    assert client.code() == grpc.StatusCode.NOT_FOUND
