"""The mock's people: its organizations and users, fixed by the config.

Three users cover what the panel has to tell apart: the scripted agent (the
agent participant of every scripted conversation), a second agent of the same
org who is on no conversation, and a user of another org.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from server.devmode.mocks.genesys.config import MockGenesysConfig

#: What a user is for in the mock (``GET /mock/users`` reports it).
Role = Literal["scripted-agent", "second-agent", "other-org"]


@dataclass(frozen=True)
class Org:
    """A platform organization."""

    id: str
    name: str
    third_party_name: str


@dataclass(frozen=True)
class User:
    """A platform user of one organization."""

    id: str
    name: str
    email: str
    division_id: str
    org_id: str
    role: Role
    title: str = "Customer Care Agent"


class Directory:
    """The orgs and users of one mock, by id (users in a stable order)."""

    def __init__(self, orgs: list[Org], users: list[User]) -> None:
        """Index the given orgs and users; every user's org must be among them."""
        self.orgs = {org.id: org for org in orgs}
        self.users = {user.id: user for user in users}
        missing = [u.id for u in users if u.org_id not in self.orgs]
        if missing:
            raise ValueError(f"users without a known org: {missing}")

    @classmethod
    def from_config(cls, config: MockGenesysConfig) -> Directory:
        """The two orgs and three users the config describes."""
        home = Org(config.org_id, config.org_name, config.org_third_party_name)
        other = Org(config.other_org_id, config.other_org_name, config.other_org_third_party_name)
        users = [
            User(
                id=config.agent_user_id,
                name=config.agent_name,
                email=config.agent_email,
                division_id=config.agent_division_id,
                org_id=home.id,
                role="scripted-agent",
            ),
            User(
                id=config.second_agent_user_id,
                name=config.second_agent_name,
                email=config.second_agent_email,
                division_id=config.agent_division_id,
                org_id=home.id,
                role="second-agent",
            ),
            User(
                id=config.other_user_id,
                name=config.other_user_name,
                email=config.other_user_email,
                division_id=config.other_org_division_id,
                org_id=other.id,
                role="other-org",
            ),
        ]
        return cls([home, other], users)

    def org_of(self, user: User) -> Org:
        """The organization a user belongs to."""
        return self.orgs[user.org_id]

    def summary(self, user: User) -> dict[str, Any]:
        """A user as ``GET /mock/users`` lists it."""
        org = self.org_of(user)
        return {
            "id": user.id,
            "name": user.name,
            "orgId": org.id,
            "orgName": org.name,
            "role": user.role,
        }
