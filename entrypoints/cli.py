"""The `tessera` command line: serve, organisations, keys."""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from application.audit import AuditQuery, AuditTrailProjection, verify_chain
from application.projections import BATCH_SIZE, ProjectionFollower, follow_all
from application.webhooks import BackgroundDispatcher
from entrypoints.config import Settings
from entrypoints.container import Container, build_container


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    os.environ["TESSERA_PORT"] = str(args.port)  # the default WebAuthn origin (workers too)
    settings = Settings.from_env()
    container = build_container(settings)
    container.identity_app()  # create tables once, before workers start
    container.key_ring()
    container.data_keys()
    container.signing_keys()  # create tables and key files once, not in racing workers
    container.audit_view()
    container.analytics_view()
    container.webhook_outbox()
    container.send_counters()
    if args.demo:
        os.environ["TESSERA_DEMO_ORG"] = str(_print_demo(container, settings, port=args.port))
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


def _print_demo(container: Container, settings: Settings, *, port: int) -> UUID:
    """Create the demo organisation once, and a fresh application key on every start."""
    marker = settings.home / "demo-org"
    app = container.identity_app()
    if marker.exists():
        org_id = UUID(marker.read_text().strip())
        _, api_key = container.issue_api_key()(org_id=org_id, role="application", label="make run")
        _, admin_key = container.issue_api_key()(org_id=org_id, role="admin", label="make run")
        name = app.get_organisation(org_id).name
    else:
        created = container.create_organisation()(name="Demo")
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
        f"  (new keys are issued on every start; they are shown only here)\n"
        f"  demo application (enrol a security key or passkey, then sign in): "
        f"http://localhost:{port}/demo/\n",
        flush=True,
    )
    return org_id


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


def _admin_add(args: argparse.Namespace) -> int:
    from application.errors import TesseraError

    container = build_container()
    base = (args.base_url or container.settings().issuer).rstrip("/")
    try:
        link = container.appoint_administrator()(
            org_id=UUID(args.org_id), user_id=args.user_id, by="cli"
        )
    except TesseraError as error:
        print(f"tessera: {error}", file=sys.stderr)
        return 1
    url = f"{base}/admin/enrol?token={link.token}"
    if args.json:
        print(json.dumps({"enrolment_url": url, "expires_at": link.expires_at.isoformat()}))
    else:
        print(f"{args.user_id} is an administrator of {args.org_id}.")
        print(f"one-time enrolment link (until {link.expires_at:%Y-%m-%d %H:%M} UTC):")
        print(url)
    return 0


def _admin_remove(args: argparse.Namespace) -> int:
    from application.errors import TesseraError

    container = build_container()
    try:
        container.remove_administrator()(org_id=UUID(args.org_id), user_id=args.user_id, by="cli")
    except TesseraError as error:
        print(f"tessera: {error}", file=sys.stderr)
        return 1
    print(f"{args.user_id} is no longer an administrator of {args.org_id}; their sessions ended.")
    return 0


def _add_admin_commands(commands: Any) -> None:
    admin = commands.add_parser(
        "admin", help="manage administrators", description="Manage the admin area's users."
    )
    sub = admin.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    add = sub.add_parser(
        "add",
        help="make a user an administrator and print a one-time enrolment link",
        description="Give USER_ID of organisation ORG the admin role and print a one-time link "
        "(24 h) where they set a password and enrol an authenticator app. Running it again "
        "replaces an unused link.",
    )
    add.add_argument("org_id", metavar="ORG")
    add.add_argument("user_id", metavar="USER_ID")
    add.add_argument("--base-url", help="the server's public URL (default: TESSERA_ISSUER)")
    add.add_argument("--json", action="store_true", help="print JSON")
    add.set_defaults(handler=_admin_add)
    remove = sub.add_parser(
        "remove",
        help="take the admin role away; the administrator's sessions end at once",
        description="Remove USER_ID of organisation ORG from the administrators: every admin "
        "session of theirs ends at once and sign-in is refused (recorded in the audit trail). "
        "`admin add` appoints them again, with a new enrolment.",
    )
    remove.add_argument("org_id", metavar="ORG")
    remove.add_argument("user_id", metavar="USER_ID")
    remove.set_defaults(handler=_admin_remove)


def _mds_load(args: argparse.Namespace) -> int:
    from pathlib import Path

    from adapters.mds import MetadataError

    container = build_container()
    try:
        metadata = container.authenticator_metadata().install(Path(args.path))
    except MetadataError as error:
        print(f"tessera: {error}", file=sys.stderr)
        return 1
    suspended = container.recheck_credentials()()
    print(f"metadata BLOB {metadata.serial} installed; {len(suspended)} credentials suspended")
    for enrolment_id in suspended:
        print(f"suspended {enrolment_id}")
    return 0


def _add_mds_commands(commands: Any) -> None:
    mds = commands.add_parser(
        "mds",
        help="load FIDO Metadata Service data",
        description="Trust anchors and status of WebAuthn authenticators (FIDO MDS3).",
    )
    sub = mds.add_subparsers(dest="mds_command", required=True, metavar="COMMAND")
    load = sub.add_parser(
        "load",
        help="verify and install an MDS3 BLOB, then re-check every credential",
        description="Verify the BLOB's signature chain against TESSERA_MDS_ROOT, install it for "
        "every server process (they pick it up within seconds), and suspend every enrolled "
        "credential whose authenticator model it reports revoked or compromised. An older BLOB "
        "than the installed one is refused.",
    )
    load.add_argument("path", metavar="PATH", help="the BLOB file (a JWT), from a download")
    load.set_defaults(handler=_mds_load)


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


def _progress(label: str) -> Callable[[int, int], None]:
    def show(position: int, head: int) -> None:
        done = position / head if head else 1.0
        bar = "#" * int(done * 30)
        print(f"\r{label} [{bar:<30}] {position}/{head}", end="", file=sys.stderr, flush=True)

    return show


def _projections_run(args: argparse.Namespace) -> int:
    container = build_container()
    followers = container.projection_followers()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    for follower in followers:
        follower.batch_size = args.batch_size
        print(f"projection {follower.name}: from position {follower.position()}", file=sys.stderr)
    # the webhook outbox is delivered from here too (ADR 10)
    dispatcher = BackgroundDispatcher(container.webhook_dispatcher())
    dispatcher.start()
    try:
        follow_all(followers, stop, interval=args.interval)
    finally:
        dispatcher.stop()
    for follower in followers:
        print(f"projection {follower.name}: stopped at {follower.position()}", file=sys.stderr)
    return 0


#: Read models that `projections rebuild` may drop and replay (each name: its follower and view).
REBUILDABLE = ("audit", "analytics")


def _projections_rebuild(args: argparse.Namespace) -> int:
    from entrypoints.rebuild import rebuild

    names = [args.name] if args.name else list(REBUILDABLE)
    # each model in a process of its own on a long log (entrypoints/rebuild.py)
    rebuilt = rebuild(
        Settings.from_env(), names, progress=_progress(f"rebuilding {' and '.join(names)}")
    )
    print(file=sys.stderr)
    for name in names:
        done = rebuilt[name]
        print(f"{name}: rebuilt from {done.applied} events, position {done.position}")
    return 0


def _projections_status(args: argparse.Namespace) -> int:
    container = build_container()
    for follower in container.projection_followers():
        position, head = follower.position(), follower.head()
        print(f"{follower.name}: position {position}, head {head}, lag {max(0, head - position)}")
    return 0


def _org_arg(value: str | None) -> UUID | None:
    return UUID(value) if value else None


def _audit_verify(args: argparse.Namespace) -> int:
    container = build_container()
    view = container.audit_view()
    breaks = verify_chain(view, _org_arg(args.org))
    heads = view.heads()
    if breaks:
        for found in breaks:
            print(f"BROKEN: {found}")
        return 1
    total = sum(seq for org, (seq, _) in heads.items() if args.org in (None, str(org)))
    print(f"audit trail intact: {total} records in {len(heads)} organisations")
    return 0


def _when(value: str) -> datetime:
    at = datetime.fromisoformat(value)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _audit_export(args: argparse.Namespace) -> int:
    container = build_container()
    view = container.audit_view()
    orgs = [UUID(args.org)] if args.org else sorted(view.heads(), key=str)
    writer = None
    for org in orgs:
        after = 0
        while records := view.query(
            AuditQuery(
                org_id=org,
                user_id=args.user,
                since=args.since,
                until=args.until,
                after_seq=after,
                limit=1000,
            )
        ):
            for record in records:
                row = record.as_dict()
                if args.format == "jsonl":
                    print(json.dumps(row, sort_keys=True))
                    continue
                row["details"] = json.dumps(row["details"], sort_keys=True)
                if writer is None:
                    writer = csv.DictWriter(sys.stdout, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
            after = records[-1].seq
    return 0


def _replay(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    container = build_container(settings)
    database = container.database()
    stamp = args.until.strftime("%Y%m%dT%H%M%SZ")
    if database.kind == "postgres":
        view = database.audit_view(name="replay_audit")
        where = f"tables replay_audit_* in schema {database.schema!r}"
    else:
        path = args.into or str(settings.home / f"replay-{stamp}.audit.db")
        view = database.audit_view(name="audit", sqlite_path=path)
        where = f"SQLite file {path}"
    view.reset()
    follower = ProjectionFollower(
        container.identity_app(), AuditTrailProjection(view), until=args.until
    )
    applied = follower.catch_up(progress=_progress("replaying audit"))
    print(file=sys.stderr)
    print(f"audit trail as of {args.until.isoformat()}: {applied} events, in {where}")
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
    _add_projection_commands(commands)
    _add_admin_commands(commands)
    _add_mds_commands(commands)
    return parser


def _add_projection_commands(commands: Any) -> None:
    projections = commands.add_parser(
        "projections",
        help="run, rebuild or inspect read models",
        description="Read models (the audit trail, analytics) are projections of the event store.",
    )
    sub = projections.add_subparsers(dest="projections_command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="follow the event store and keep read models current (PostgreSQL production)",
        description="Apply new events to every read model until stopped (SIGTERM/SIGINT). "
        "Each batch and its position commit together, so a restart resumes exactly.",
    )
    run.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="events per transaction")
    run.add_argument("--interval", type=float, default=0.5, help="seconds between polls")
    run.set_defaults(handler=_projections_run)
    rebuild = sub.add_parser(
        "rebuild",
        help="drop a read model and rebuild it from the events",
        description="Delete a read model's rows and position, then apply every event again "
        "(a progress bar goes to stderr).",
    )
    rebuild.add_argument(
        "name", nargs="?", choices=REBUILDABLE, help="one read model (default: audit and analytics)"
    )
    rebuild.set_defaults(handler=_projections_rebuild)
    status = sub.add_parser(
        "status", help="position and lag of each read model", description="Show lag."
    )
    status.set_defaults(handler=_projections_status)

    audit = commands.add_parser(
        "audit", help="verify or export the audit trail", description="The audit trail."
    )
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    verify = audit_sub.add_parser(
        "verify",
        help="walk the hash chains and report the first break",
        description="Recompute every record's hash; exit 1 and name the organisation, seq and "
        "position of the first break in each chain.",
    )
    verify.add_argument("--org", help="only this organisation's chain")
    verify.set_defaults(handler=_audit_verify)
    export = audit_sub.add_parser(
        "export",
        help="write audit records as JSON lines or CSV",
        description="Write the records of a time range to stdout.",
    )
    export.add_argument("--from", dest="since", type=_when, help="ISO 8601, inclusive")
    export.add_argument("--to", dest="until", type=_when, help="ISO 8601, exclusive")
    export.add_argument("--user", help="only this user id")
    export.add_argument("--org", help="only this organisation")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.set_defaults(handler=_audit_export)

    replay = commands.add_parser(
        "replay",
        help="rebuild read models as they were at a moment",
        description="Rebuild the audit trail from the events recorded up to --until into a "
        "separate copy (SQLite: a file; PostgreSQL: replay_audit_* tables), for an auditor.",
    )
    replay.add_argument("--until", type=_when, required=True, metavar="TIMESTAMP")
    replay.add_argument("--into", help="SQLite only: the file to write (default in TESSERA_HOME)")
    replay.set_defaults(handler=_replay)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (ValueError, OSError) as error:
        print(f"tessera: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
