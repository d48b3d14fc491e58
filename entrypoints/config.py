"""Settings from the environment (see the configuration table in the README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    database_url: str
    issuer: str
    kek: str | None
    signing_key_pem: str | None
    max_body_bytes: int
    token_key_retention_seconds: int
    create_tables: bool
    pool_size: int
    projections: str = ""  # "inline" | "external"; empty: inline on SQLite, external on PostgreSQL
    webhook_allowed_hosts: tuple[str, ...] | None = None  # None: webhooks may go to any host
    rp_id: str = "localhost"  # WebAuthn relying-party id (browsers refuse IP addresses)
    origins: tuple[str, ...] = ("http://localhost:8000",)  # origins allowed in ceremonies
    mds_root: Path | None = None  # the FIDO Metadata Service root certificate (PEM or DER)
    demo_org: str | None = None  # `serve --demo`: the organisation /demo plays the application of

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("TESSERA_HOME", "./var"))
        return cls(
            home=home,
            database_url=env.get("TESSERA_DATABASE_URL") or f"sqlite:///{home / 'tessera.db'}",
            issuer=env.get("TESSERA_ISSUER", "http://localhost:8000"),
            kek=env.get("TESSERA_KEK") or None,
            signing_key_pem=env.get("TESSERA_SIGNING_KEY") or None,
            max_body_bytes=int(env.get("TESSERA_MAX_BODY_BYTES", "65536")),
            token_key_retention_seconds=int(env.get("TESSERA_KEY_RETENTION_SECONDS", "86400")),
            create_tables=env.get("TESSERA_CREATE_TABLES", "true").lower() != "false",
            pool_size=int(env.get("TESSERA_DB_POOL_SIZE", "8")),
            projections=env.get("TESSERA_PROJECTIONS", "").strip().lower(),
            webhook_allowed_hosts=_hosts(env.get("TESSERA_WEBHOOK_ALLOWED_HOSTS", "")),
            rp_id=env.get("TESSERA_RP_ID", "localhost").strip() or "localhost",
            origins=_origins(env.get("TESSERA_ORIGINS", ""))
            or (f"http://localhost:{env.get('TESSERA_PORT', '8000')}",),
            mds_root=Path(env["TESSERA_MDS_ROOT"]) if env.get("TESSERA_MDS_ROOT") else None,
            demo_org=env.get("TESSERA_DEMO_ORG") or None,
        )

    def projections_inline(self, database_kind: str) -> bool:
        """Whether server processes run the projections themselves (see ADR 9)."""
        if self.projections not in ("", "inline", "external"):
            raise ValueError("TESSERA_PROJECTIONS must be 'inline' or 'external'")
        if self.projections:
            return self.projections == "inline"
        return database_kind != "postgres"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def mds_blob(self) -> Path:
        """Where `tessera mds load` keeps the verified metadata BLOB for every process."""
        return self.home / "mds" / "blob.jwt"


def _hosts(value: str) -> tuple[str, ...] | None:
    """`TESSERA_WEBHOOK_ALLOWED_HOSTS`: comma-separated host names (`*.example.com` for a
    domain's subdomains); empty or unset allows every host."""
    hosts = tuple(h.strip().lower() for h in value.split(",") if h.strip())
    return hosts or None


def _origins(value: str) -> tuple[str, ...]:
    """`TESSERA_ORIGINS`: comma-separated origins (scheme://host[:port]) allowed to run WebAuthn
    ceremonies; unset: the server's own `http://localhost:PORT`."""
    return tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
