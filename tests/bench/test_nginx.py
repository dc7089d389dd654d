"""The shipped nginx configuration, as the scale benchmark and the deployment tests run it."""

from __future__ import annotations

from pathlib import Path

from bench.nginx import CONF, site_config


def test_only_the_addresses_and_certificate_of_the_shipped_configuration_change() -> None:
    site = site_config([8101, 8102, 8103], 9443, Path("/tmp/c.crt"), Path("/tmp/c.key"))
    assert "10.0.0." not in site and "assist.example.com.crt" not in site
    servers = [line.strip() for line in site.splitlines() if line.strip().startswith("server 1")]
    assert servers == [f"server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;"
                       for p in (8101, 8102, 8103)]
    assert "listen 127.0.0.1:9443 ssl http2;" in site
    # Everything else is the file docs/deploy.md gives, line for line.
    kept = [line for line in CONF.read_text().splitlines()
            if "10.0.0." not in line and "listen 443" not in line and "/etc/nginx/tls" not in line]
    assert all(line in site.splitlines() for line in kept)


def test_one_upstream_is_enough() -> None:
    site = site_config([8101], 9443, Path("/tmp/c.crt"), Path("/tmp/c.key"))
    assert site.count("server 127.0.0.1:") == 1
