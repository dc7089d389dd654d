"""Genesys Cloud regions: hosts and ``gcTargetEnv`` values (see docs/genesys.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    """One Genesys Cloud region and the hosts derived from its domain."""

    name: str
    domain: str
    target_env: str

    @property
    def login_base(self) -> str:
        return f"https://login.{self.domain}"

    @property
    def api_base(self) -> str:
        return f"https://api.{self.domain}"

    @property
    def desktop_origin(self) -> str:
        """The Agent Desktop origin that frames the panel."""
        return f"https://apps.{self.domain}"

    @property
    def streaming_origin(self) -> str:
        """Where notification channel WebSockets connect."""
        return f"wss://streaming.{self.domain}"


REGIONS: tuple[Region, ...] = (
    Region("us-east-1", "mypurecloud.com", "prod"),
    Region("us-east-2", "use2.us-gov-pure.cloud", "fedramp-use2-core"),
    Region("us-west-2", "usw2.pure.cloud", "prod-usw2"),
    Region("ca-central-1", "cac1.pure.cloud", "prod-cac1"),
    Region("sa-east-1", "sae1.pure.cloud", "prod-sae1"),
    Region("mx-central-1", "mxc1.pure.cloud", "prod-mxc1"),
    Region("eu-west-1", "mypurecloud.ie", "prod-euw1"),
    Region("eu-west-2", "euw2.pure.cloud", "prod-euw2"),
    Region("eu-central-1", "mypurecloud.de", "prod-euc1"),
    Region("eu-central-2", "euc2.pure.cloud", "prod-euc2"),
    Region("me-central-1", "mec1.pure.cloud", "prod-mec1"),
    Region("ap-south-1", "aps1.pure.cloud", "prod-aps1"),
    Region("ap-southeast-1", "apse1.pure.cloud", "prod-apse1"),
    Region("ap-southeast-2", "mypurecloud.com.au", "prod-apse2"),
    Region("ap-northeast-1", "mypurecloud.jp", "prod-apne1"),
    Region("ap-northeast-2", "apne2.pure.cloud", "prod-apne2"),
    Region("ap-northeast-3", "apne3.pure.cloud", "prod-apne3"),
    # The EU sovereign cloud: its own domain, and an environment name outside the
    # ``prod-*`` pattern (as Genesys's environment tables spell it).
    Region("eusc-de-east-1", "edee1.eusc-pure.cloud", "eusc-edee1-core"),
)

_BY_KEY = {key: r for r in REGIONS for key in (r.name, r.domain, r.target_env)}
# Region tables disagree on the sovereign cloud's environment name: the Client App and
# Platform SDKs' say "eusc", the service-discovery table "eusc-edee1-core". Both are
# taken; the page and the CSP use the region's own hosts either way.
_BY_KEY["eusc"] = _BY_KEY["eusc-edee1-core"]


def find_region(key: str) -> Region | None:
    """The region named by its region name, domain or ``gcTargetEnv``; None if unknown."""
    return _BY_KEY.get(key.strip().lower())
