"""Pure rules: scope resolution, the org tree, password policy and lockout, the audit hash chain."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from crm_identity.domain.access import grants_of, widest_scope
from crm_identity.domain.audit import GENESIS, ChainCheck, ChainLink, hash_of
from crm_identity.domain.model import BUILT_IN_ROLES, PERMISSIONS, is_known_permission
from crm_identity.domain.org import check_manager, check_move, ids_of_path, nearest_head, path_of, rebase
from crm_identity.domain.passwords import LockoutPolicy, LockState, after_failure, check_login, check_password
from crmkit.auth import DataScope
from crmkit.errors import Conflict, InvalidArgument

ROLES = {r.name: r for r in BUILT_IN_ROLES}


@pytest.mark.parametrize(("scopes", "expected"), [
    ([], DataScope.OWN),
    ([DataScope.OWN, DataScope.TEAM], DataScope.TEAM),
    ([DataScope.TEAM, DataScope.ALL, DataScope.DEPARTMENT], DataScope.ALL),
    ([DataScope.SIGNED], DataScope.SIGNED),
    ([DataScope.SIGNED, DataScope.OWN], DataScope.OWN),
])
def test_widest_scope(scopes, expected) -> None:
    assert widest_scope(scopes) == expected


def test_grants_union_permissions_and_sensitivity() -> None:
    grants = grants_of([ROLES["sales_rep"], ROLES["marketing"]])
    assert grants.data_scope == DataScope.ALL
    assert "customers.write" in grants.permissions and "insights.read" in grants.permissions
    assert grants.sees_sensitive is True
    assert grants_of([ROLES["marketing"]]).sees_sensitive is False
    assert grants_of([ROLES["finance"]]).data_scope == DataScope.SIGNED


def test_built_in_roles_cover_the_documents() -> None:
    assert set(ROLES) == {"admin", "general_manager", "sales_director", "sales_manager", "sales_rep",
                          "customer_service", "finance", "marketing", "auditor", "operator"}
    assert ROLES["admin"].permissions == ("*",)
    assert ROLES["sales_manager"].data_scope == DataScope.TEAM
    assert not any(p.endswith((".write", ".manage", ".delete", ".approve")) for p in ROLES["auditor"].permissions)
    for role in BUILT_IN_ROLES:
        assert all(is_known_permission(p) for p in role.permissions)
    assert "org.manage" not in ROLES["sales_rep"].permissions
    assert is_known_permission("customers.*") and not is_known_permission("nope.read")
    assert "audit.read" in PERMISSIONS


def test_paths_and_moves() -> None:
    root, sales, east = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    root_path = path_of(root, None)
    sales_path = path_of(sales, root_path)
    east_path = path_of(east, sales_path)
    assert east_path == f"/{root}/{sales}/{east}/"
    assert ids_of_path(east_path) == [root, sales, east]
    with pytest.raises(Conflict):
        check_move(sales, east, east_path)       # under its own child
    with pytest.raises(Conflict):
        check_move(sales, sales, sales_path)     # under itself
    check_move(east, root, root_path)
    moved = path_of(east, root_path)
    assert rebase(f"{east_path}{uuid.UUID(int=1)}/", east_path, moved) == f"/{root}/{east}/{uuid.UUID(int=1)}/"


def test_manager_cycles_are_refused() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    check_manager(a, b, [c])
    check_manager(a, None, [])
    with pytest.raises(Conflict):
        check_manager(a, a, [])
    with pytest.raises(Conflict):
        check_manager(a, b, [c, a])  # b reports to c reports to a


def test_nearest_head_falls_back_to_ancestors() -> None:
    root, sales, east = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    path = f"/{root}/{sales}/{east}/"
    head_root, head_sales = uuid.uuid4(), uuid.uuid4()
    assert nearest_head(path, {root: head_root, sales: head_sales}) == (sales, head_sales)
    assert nearest_head(path, {root: head_root}) == (root, head_root)
    assert nearest_head(path, {}) is None


def test_password_policy() -> None:
    check_password("correct horse battery", "li.wei")
    with pytest.raises(InvalidArgument):
        check_password("short", "li.wei")
    with pytest.raises(InvalidArgument):
        check_password("xx-LI.WEI-2026", "li.wei")
    assert check_login("  Li.Wei ") == "li.wei"
    with pytest.raises(InvalidArgument):
        check_login("bad login")


def test_lockout_arithmetic() -> None:
    policy = LockoutPolicy(max_failures=5, lock_for=dt.timedelta(minutes=15))
    now = dt.datetime(2026, 11, 25, 9, tzinfo=dt.UTC)
    state = LockState()
    for _ in range(4):
        state = after_failure(state, now, policy)
        assert not state.is_locked(now)
    state = after_failure(state, now, policy)
    assert state.is_locked(now) and state.locked_until == now + dt.timedelta(minutes=15)
    assert after_failure(state, now, policy) == state                    # no extension while locked
    assert not state.is_locked(now + dt.timedelta(minutes=15))
    assert after_failure(state, now + dt.timedelta(minutes=16), policy).failed_attempts == 1


def _chain(n: int) -> list[ChainLink]:
    links, prev = [], GENESIS
    for i in range(1, n + 1):
        link = ChainLink(i, dt.datetime(2026, 11, 25, tzinfo=dt.UTC), "customers", "customer", f"c{i}", "updated",
                         "rep", '{"name": "a"}', '{"name": "b"}', f"e{i}", prev)
        link = dataclasses.replace(link, hash=hash_of(link))
        links.append(link)
        prev = link.hash
    return links


def test_chain_detects_alteration_and_removal() -> None:
    links = _chain(5)
    check = ChainCheck()
    assert check.feed(links[:2]) and check.feed(links[2:]) and check.intact and check.checked == 5

    altered = [*links[:2], dataclasses.replace(links[2], after='{"name": "x"}'), *links[3:]]
    check = ChainCheck()
    assert not check.feed(altered) and check.first_broken == 3 and "altered" in check.problem

    check = ChainCheck()
    assert not check.feed([*links[:1], *links[2:]]) and check.first_broken == 3

    rehashed = dataclasses.replace(links[2], after='{"name": "x"}')
    rehashed = dataclasses.replace(rehashed, hash=hash_of(rehashed))   # a forger recomputes one hash
    check = ChainCheck()
    assert not check.feed([*links[:2], rehashed, *links[3:]]) and check.first_broken == 4


def test_anchor_catches_what_the_chain_alone_cannot() -> None:
    links = _chain(5)
    anchored = ChainCheck(anchor=(4, links[3].hash))
    anchored.feed(links)
    anchored.finish()
    assert anchored.intact

    cut = ChainCheck(anchor=(4, links[3].hash))
    assert cut.feed(links[:3])
    cut.finish()
    assert (cut.intact, cut.first_broken) == (False, 4) and "removed from its end" in cut.problem

    # entries 4 and 5 replaced by one new entry 6 linked to entry 3: a whole chain, but the anchor's entry is gone
    replacement = dataclasses.replace(links[4], sequence=6, prev_hash=links[2].hash)
    replacement = dataclasses.replace(replacement, hash=hash_of(replacement))
    gap = ChainCheck(anchor=(4, links[3].hash))
    assert not gap.feed([*links[:3], replacement]) and gap.first_broken == 6 and "missing" in gap.problem

    assert ChainCheck(anchor=(4, "f" * 64)).feed(links) is False
