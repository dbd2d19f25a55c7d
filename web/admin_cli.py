"""``xray-admin``: users, passwords, API tokens, sign-in links and the audit log, from the server's shell.

    xray-admin create-user alice [--admin] [--password-stdin]
    xray-admin reset-password alice [--password-stdin]
    xray-admin list-users
    xray-admin disable-user alice | enable-user alice
    xray-admin create-token alice --name "nightly import" [--days 90]
    xray-admin list-tokens [alice]
    xray-admin revoke-token <token id or xrt_ prefix>
    xray-admin sign-in-link alice [--base-url http://127.0.0.1:8000]
    xray-admin audit [--since 2026-11-01] [--action sign_in] [--csv audit.csv]

Passwords: from stdin with --password-stdin (one line), typed twice at a terminal, or else generated and
printed once. Every change is written to the audit log with the actor "xray-admin".
"""
from __future__ import annotations

import argparse
import datetime as dt
import getpass
import secrets
import sys
import uuid

from sqlalchemy import select

from shared.auth import accounts, audit
from shared.auth.accounts import AccountError
from shared.db.engine import Database
from shared.db.models import ApiToken, Role, User
from shared.ops.config import load_settings

ACTOR = "xray-admin"


def _password(args) -> tuple[str, bool]:
    """(password, generated?)"""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    if sys.stdin.isatty():
        first, second = getpass.getpass("New password: "), getpass.getpass("Again: ")
        if first != second:
            raise AccountError("the two passwords differ")
        return first, False
    return secrets.token_urlsafe(15), True


def _user(session, username: str) -> User:
    user = accounts.find_user(session, username)
    if user is None:
        raise AccountError(f"there is no user {username!r}")
    return user


def _record(session, action: str, target_type: str, target_id, **detail) -> None:
    audit.record(session, action, actor=ACTOR, target_type=target_type, target_id=target_id, detail=detail or None)


def create_user(session, args) -> None:
    password, generated = _password(args)
    user = accounts.create_user(session, args.username, password, Role.ADMIN if args.admin else Role.MEMBER)
    _record(session, "user_create", "user", user.id, role=user.role)
    print(f"created {user.role} {user.username}" + (f"; password (shown once): {password}" if generated else ""))


def reset_password(session, args) -> None:
    user = _user(session, args.username)
    password, generated = _password(args)
    accounts.set_password(session, user, password)
    _record(session, "password_reset", "user", user.id)
    print(f"password of {user.username} reset; every session of theirs is signed out"
          + (f"; new password (shown once): {password}" if generated else ""))


def list_users(session, args) -> None:
    for user in session.scalars(select(User).order_by(User.username)):
        state = "active" if user.active else "disabled"
        print(f"{user.username:<30} {user.role:<7} {state:<8} created {user.created_at:%Y-%m-%d}"
              + ("" if user.password_hash else "  (no password: signs in by link)"))


def set_active(session, args, active: bool) -> None:
    user = _user(session, args.username)
    accounts.set_active(session, user, active)
    _record(session, "user_enable" if active else "user_disable", "user", user.id)
    print(f"{user.username} is now {'active' if active else 'disabled (signed out everywhere; cannot sign in; its tokens stop working)'}")


def create_token(session, args) -> None:
    user = _user(session, args.username)
    token, plain = accounts.create_token(session, user, args.name, expires_in_days=args.days or None)
    _record(session, "token_create", "token", token.id)
    expiry = f"expires {token.expires_at:%Y-%m-%d}" if token.expires_at else "never expires"
    print(f"token {token.id} for {user.username} ({expiry}); shown once, keep it secret:\n{plain}")


def list_tokens(session, args) -> None:
    user_id = _user(session, args.username).id if args.username else None
    for token in accounts.list_tokens(session, user_id):
        used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
        expires = f"{token.expires_at:%Y-%m-%d}" if token.expires_at else "never"
        print(f"{token.id}  xrt_{token.prefix}_…  {token.user.username:<20} {accounts.token_state(token):<8} "
              f"expires {expires}  last used {used}  {token.name}")


def revoke_token(session, args) -> None:
    presented = args.token.strip()
    try:
        token = session.get(ApiToken, uuid.UUID(presented))
    except ValueError:
        prefix = presented.split("_")[1] if presented.startswith("xrt_") else presented
        token = session.scalars(select(ApiToken).where(ApiToken.prefix == prefix)).one_or_none()
    if token is None:
        raise AccountError(f"there is no token {presented!r}")
    accounts.revoke_token(session, token.id)
    _record(session, "token_revoke", "token", token.id)
    print(f"revoked token {token.id} ({token.name}) of {token.user.username}")


def sign_in_link(session, args) -> None:
    user = _user(session, args.username)
    secret = accounts.create_sign_in_link(session, user)
    print(f"{args.base_url.rstrip('/')}/signin/link/{secret}  (one use, valid 12 hours)")


def show_audit(session, args) -> None:
    since = dt.datetime.fromisoformat(args.since).replace(tzinfo=dt.timezone.utc) if args.since else None
    rows = audit.events(session, since=since, action=args.action, limit=args.limit)
    if args.csv:
        text = audit.to_csv(rows)
        if args.csv == "-":
            sys.stdout.write(text)
        else:
            with open(args.csv, "w", newline="") as handle:
                handle.write(text)
            print(f"wrote {len(rows)} events to {args.csv}")
        return
    for e in rows:
        target = f"{e.target_type} {e.target_id}" if e.target_type else ""
        print(f"{e.id:>7} {e.at:%Y-%m-%d %H:%M:%S} {e.actor or '-':<16} {e.action:<16} {target:<50} {e.ip or ''}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xray-admin", description="Manage users, API tokens and the audit log.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (("create-user", "add a user"), ("reset-password", "set a user's password")):
        command = sub.add_parser(name, help=helptext)
        command.add_argument("username")
        command.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        if name == "create-user":
            command.add_argument("--admin", action="store_true", help="may see every user's batches and the audit log")
    sub.add_parser("list-users", help="list users")
    for name in ("disable-user", "enable-user"):
        sub.add_parser(name, help=f"{name.split('-')[0]} a user").add_argument("username")
    token = sub.add_parser("create-token", help="create an API token (printed once)")
    token.add_argument("username")
    token.add_argument("--name", default="token", help="what the token is for")
    token.add_argument("--days", type=float, default=load_settings().token_days, help="lifetime; 0: never expires")
    tokens = sub.add_parser("list-tokens", help="list API tokens")
    tokens.add_argument("username", nargs="?")
    revoke = sub.add_parser("revoke-token", help="revoke an API token")
    revoke.add_argument("token", help="the token's id, or its xrt_<prefix> part")
    link = sub.add_parser("sign-in-link", help="print a one-time sign-in link")
    link.add_argument("username")
    link.add_argument("--base-url", default=f"http://{load_settings().bind}")
    show = sub.add_parser("audit", help="read or export the audit log")
    show.add_argument("--since", help="a date, e.g. 2026-11-01 (UTC)")
    show.add_argument("--action", choices=audit.ACTIONS)
    show.add_argument("--limit", type=int, default=1000)
    show.add_argument("--csv", help="write CSV to this file ('-': standard output)")
    return parser


COMMANDS = {
    "create-user": create_user, "reset-password": reset_password, "list-users": list_users,
    "disable-user": lambda s, a: set_active(s, a, False), "enable-user": lambda s, a: set_active(s, a, True),
    "create-token": create_token, "list-tokens": list_tokens, "revoke-token": revoke_token,
    "sign-in-link": sign_in_link, "audit": show_audit,
}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    db = Database(load_settings().database_url)
    try:
        with db.session() as session:
            COMMANDS[args.command](session, args)
    except (AccountError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    finally:
        db.engine.dispose()


if __name__ == "__main__":
    main()
