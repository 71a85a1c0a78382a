"""An org chart given as data: `crm_contracts.domain.approvals.OrgLookup` without the identity
service, for in-process tests of the whole API (the service itself always asks identity)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StaticOrg:
    managers: dict[str, str] = field(default_factory=dict)  # user → manager
    heads: dict[str, str] = field(default_factory=dict)  # department id → head
    roles: dict[str, list[str]] = field(default_factory=dict)  # role → holders
    users: set[str] = field(default_factory=set)

    async def manager_chain(self, user_id: str, levels: int) -> list[str]:
        chain, current = [], user_id
        while current in self.managers and len(chain) < (levels or 50):
            current = self.managers[current]
            chain.append(current)
        return chain

    async def department_head(self, department_id: str) -> str | None:
        return self.heads.get(department_id)

    async def role_holders(self, role: str, department_id: str) -> list[str]:
        return list(self.roles.get(role, []))

    async def user_exists(self, user_id: str) -> bool:
        return user_id in self.users
