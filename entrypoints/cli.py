"""The `tessera` command line: serve, organisations, keys."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from entrypoints.config import Settings
from entrypoints.container import build_container


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings.from_env()
    container = build_container(settings)
    container.identity_app()  # create tables once, before workers start
    container.key_ring()
    container.data_keys()
    container.signing_keys()  # create tables and key files once, not in racing workers
    if args.demo:
        _print_demo(container, settings, port=args.port)
    os.environ["TESSERA_CREATE_TABLES"] = "false"
    uvicorn.run(
        "entrypoints.asgi:create",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=args.access_log,
        log_level="info",
        timeout_graceful_shutdown=10,
    )
    return 0


def _print_demo(container: object, settings: Settings, *, port: int) -> None:
    """Create the demo organisation once, and a fresh application key on every start."""
    marker = settings.home / "demo-org"
    app = container.identity_app()  # type: ignore[attr-defined]
    if marker.exists():
        from uuid import UUID

        org_id = UUID(marker.read_text().strip())
        _, api_key = container.issue_api_key()(  # type: ignore[attr-defined]
            org_id=org_id, role="application", label="make run"
        )
        _, admin_key = container.issue_api_key()(  # type: ignore[attr-defined]
            org_id=org_id, role="admin", label="make run"
        )
        name = app.get_organisation(org_id).name
    else:
        created = container.create_organisation()(name="Demo")  # type: ignore[attr-defined]
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(created.org_id))
        org_id, api_key, admin_key, name = (
            created.org_id,
            created.api_key,
            created.admin_api_key,
            created.name,
        )
    print(
        f"\nTessera is starting at http://localhost:{port}\n"
        f"  demo organisation {name!r}: {org_id}\n"
        f"  application API key: {api_key}\n"
        f"  administrator API key: {admin_key}\n"
        f"  (new keys are issued on every start; they are shown only here)\n",
        flush=True,
    )


def _org_create(args: argparse.Namespace) -> int:
    container = build_container()
    created = container.create_organisation()(name=args.name)
    if args.json:
        print(
            json.dumps(
                {
                    "org_id": str(created.org_id),
                    "name": created.name,
                    "api_key": created.api_key,
                    "admin_api_key": created.admin_api_key,
                }
            )
        )
    else:
        print(f"organisation {created.name!r} created: {created.org_id}")
        print(f"application API key (shown once): {created.api_key}")
        print(f"administrator API key (shown once): {created.admin_api_key}")
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    container = build_container()
    if not args.signing_only:
        new_kek = container.key_ring().add_new_active()
        rewrapped = container.vault().rewrap_all()
        print(f"key-encryption key {new_kek} is active; {rewrapped} data keys re-wrapped")
    if not args.kek_only:
        kid = container.signing_keys().rotate(
            now=datetime.now(UTC), activate_after=args.activate_after
        )
        print(
            f"signing key {kid} is published now and signs from {args.activate_after} s on; "
            "old keys stay in the JWKS until their last token expires"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tessera",
        description="Tessera multi-factor authentication service.",
        epilog="Configuration comes from TESSERA_* environment variables (see README).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the HTTP server", description="Run the HTTP API server."
    )
    serve.add_argument("--host", default=os.environ.get("TESSERA_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("TESSERA_PORT", "8000")))
    serve.add_argument("--workers", type=int, default=int(os.environ.get("TESSERA_WORKERS", "1")))
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument(
        "--demo", action="store_true", help="create a demo organisation and print API keys for it"
    )
    serve.set_defaults(handler=_serve)

    org = commands.add_parser(
        "org", help="manage organisations", description="Manage organisations."
    )
    org_commands = org.add_subparsers(dest="org_command", required=True, metavar="COMMAND")
    create = org_commands.add_parser(
        "create",
        help="create an organisation and its API keys",
        description="Create an organisation; prints its id and new API keys once.",
    )
    create.add_argument("name")
    create.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(handler=_org_create)

    keys = commands.add_parser("keys", help="manage keys", description="Manage keys.")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    rotate = key_commands.add_parser(
        "rotate",
        help="rotate the key-encryption key and the token signing key",
        description="Generate a new key-encryption key and re-wrap every data key under it "
        "(no downtime: old keys still unwrap), and a new token signing key that is published "
        "at once and signs after --activate-after seconds.",
    )
    rotate.add_argument("--kek-only", action="store_true")
    rotate.add_argument("--signing-only", action="store_true")
    rotate.add_argument(
        "--activate-after",
        type=int,
        default=120,
        metavar="SECONDS",
        help="seconds before the new key signs (longer than JWKS caching)",
    )
    rotate.set_defaults(handler=_keys_rotate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (ValueError, OSError) as error:
        print(f"tessera: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
