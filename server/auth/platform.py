"""Which Genesys Cloud environment a panel belongs to.

Agent Desktop tells the panel where it runs with ``gcHostOrigin`` and
``gcTargetEnv``. Both are checked against the configured regions (the table in
:mod:`server.auth.regions`) before any host is derived from them, so a crafted URL
can neither point the server's token checks at a foreign host nor pass an
unknown desktop off as Genesys.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from server.auth.regions import Region, find_region
from server.errors import UnknownHostOrigin, UnknownRegion
from server.settings import Settings


@dataclass(frozen=True)
class GenesysEnv:
    """The Genesys hosts one panel talks to.

    ``region`` is None when the hosts are overridden (dev mode's mock);
    ``host_origin`` is empty when the panel is opened outside Agent Desktop.
    """

    login_base: str
    api_base: str
    target_env: str
    host_origin: str
    region: Region | None

    @property
    def framed(self) -> bool:
        """Framed by a desktop the settings allow (a region's Agent Desktop, or an extra
        frame ancestor such as dev mode's mock desktop): the Client App SDK's host."""
        return bool(self.host_origin)


def configured_regions(settings: Settings) -> list[Region]:
    """The regions of ``ASSIST_GENESYS_REGIONS``; ValueError names an unknown one."""
    regions = []
    for key in settings.genesys_regions:
        region = find_region(key)
        if region is None:
            raise ValueError(f"ASSIST_GENESYS_REGIONS: unknown region {key!r}")
        regions.append(region)
    return regions


def normalise_origin(value: str) -> str:
    """``scheme://host[:port]`` of an origin-looking value, else '' (not an origin)."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:  # a bracketed host that is no IPv6 address: "http://[::1"
        return ""
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        return ""
    if parts.query or parts.fragment or "@" in parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc.lower()}"


def allowed_host_origins(settings: Settings) -> list[str]:
    """Origins that may frame the panel: the regions' Agent Desktops, then the extras."""
    origins = [r.desktop_origin for r in configured_regions(settings)]
    origins += [normalise_origin(o) or o for o in settings.extra_frame_ancestors]
    return list(dict.fromkeys(origins))


def resolve_env(settings: Settings, target_env: str, host_origin: str) -> GenesysEnv:
    """The environment for a panel's ``gcTargetEnv`` and ``gcHostOrigin``.

    Raises :class:`UnknownHostOrigin` for a host origin that is not a configured
    Agent Desktop (or configured extra), and :class:`UnknownRegion` for a target
    env that is not configured or does not belong to the host origin.
    """
    origin = ""
    if host_origin:
        origin = normalise_origin(host_origin)
        if not origin or origin not in allowed_host_origins(settings):
            raise UnknownHostOrigin("gcHostOrigin is not a configured Genesys Agent Desktop")
    if settings.genesys_api_base:
        login = settings.genesys_login_base or settings.genesys_api_base
        return GenesysEnv(login.rstrip("/"), settings.genesys_api_base.rstrip("/"),
                          target_env, origin, None)
    regions = configured_regions(settings)
    by_origin = next((r for r in regions if r.desktop_origin == origin), None)
    if target_env:
        region = find_region(target_env)
        if region is None or region not in regions:
            raise UnknownRegion(f"gcTargetEnv {target_env!r} is not a configured region")
        if by_origin is not None and by_origin != region:
            raise UnknownRegion("gcTargetEnv does not match gcHostOrigin")
    elif by_origin is not None:
        region = by_origin
    elif len(regions) == 1:
        region = regions[0]
    else:
        raise UnknownRegion("gcTargetEnv is needed: more than one region is configured")
    return GenesysEnv(region.login_base, region.api_base, region.target_env, origin, region)
