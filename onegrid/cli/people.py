"""`onegrid people ...` (the embedded issuer's people, tokens and key) and `onegrid audit`."""

from __future__ import annotations

import json
import sys

from onegrid.cli.ui import console
from onegrid.cli.ui import table as _table
from onegrid.domain.access import ROLES
from onegrid.kernel import settings


def _issuer(args):
    import redis

    from onegrid.adapters.identity import EmbeddedIssuer
    from onegrid.operator import ops

    tenant, _ = ops.manifest(args.tenant, args.dir)
    if tenant.identity is not None:
        print(
            f"{tenant.id} signs its people in with its own identity provider ({tenant.identity.issuer}); "
            "people, roles and tokens are managed there",
            file=sys.stderr,
        )
        return None
    return EmbeddedIssuer(redis.Redis.from_url(settings.redis_url()), tenant)


def cmd_people(args) -> int:
    issuer = _issuer(args)
    if issuer is None:
        return 2
    try:
        if args.action == "add":
            person = issuer.add(args.subject, args.role, args.scope or "", args.name or "")
            print(
                f"{issuer.tenant.id}: {person['subject']} is a {person['role']}"
                + (f" of {args.scope}" if args.scope else "")
            )
        elif args.action == "list":
            rows = [
                (p["subject"], p["role"], p["scope"], p["name"], "revoked" if p["revoked"] else "")
                for p in issuer.people()
            ]
            console.print(
                _table(f"{issuer.tenant.id}: people ({len(rows)})", ["id", "role", "scope", "name", ""], rows)
            )
        elif args.action == "token":
            print(issuer.token(args.subject, args.ttl))
        elif args.action == "revoke":
            issuer.revoke(subject=args.subject, jti=args.jti)
            what = f"every token of {args.subject} issued until now" if args.subject else f"token {args.jti}"
            print(f"{issuer.tenant.id}: revoked {what}; refused from the next request on")
        elif args.action == "rotate-key":
            kid = issuer.rotate_key()
            print(f"{issuer.tenant.id}: signing with key {kid}; the previous key verifies its tokens until they expire")
        elif args.action == "jwks":
            print(json.dumps(issuer.jwks(), indent=2))
    except (ValueError, LookupError) as exc:
        print(str(exc).strip("'\""), file=sys.stderr)
        return 2
    return 0


def cmd_audit(args) -> int:
    """`onegrid audit TENANT` (the trail) or `onegrid audit verify TENANT CASE`."""
    words = args.words
    if words[0] == "verify":
        if len(words) != 3:
            print(
                "usage: onegrid audit verify TENANT CASE [--head N:SHA256 ...] [--no-history] [--json]", file=sys.stderr
            )
            return 2
        args.tenant, args.case = words[1:]
        return cmd_audit_verify(args)
    if len(words) != 1 or args.head or args.no_history:
        print("usage: onegrid audit TENANT [options], or onegrid audit verify TENANT CASE", file=sys.stderr)
        return 2
    args.tenant = words[0]
    return _audit_trail(args)


def _audit_trail(args) -> int:
    import redis

    from onegrid.adapters.redis.audit import Audit

    audit = Audit(redis.Redis.from_url(settings.redis_url()), args.tenant)
    entries = audit.read(args.after, args.limit, args.subject, args.outcome)
    if args.json:
        print(json.dumps(entries, ensure_ascii=False, indent=2))
        return 0
    rows = [
        (e["id"], e["subject"], e["role"], e["action"], e["target"], e["outcome"], e["reason"][:80]) for e in entries
    ]
    console.print(
        _table(
            f"{args.tenant}: audit ({len(rows)})",
            ["id", "subject", "role", "action", "target", "outcome", "reason"],
            rows,
        )
    )
    return 0


def cmd_audit_verify(args) -> int:
    """A case's hash-chained timeline checked (onegrid.domain.timeline) against the head on its
    record, the heads given with --head and (unless --no-history) every head the bus carried for
    it, read from the county's history.lifecycle stream: exit 0 when it is intact, 1 when it was
    altered (where and how is printed)."""
    from marshmallow import ValidationError

    from onegrid.app.supervision import verify_timeline
    from onegrid.operator import ops
    from onegrid.operator.history import reader

    history = None if args.no_history else reader(args.tenant)
    try:
        verdict = verify_timeline(args.tenant, ops.store(args.tenant), args.case, args.head or [], history)
    except (LookupError, ValidationError) as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(verdict, ensure_ascii=False, indent=2))
        return 0 if verdict["intact"] else 1
    checked = len(verdict["published_heads_checked"])
    print(f"{args.tenant} {args.case}: {verdict['entries']} entries, head {verdict['head']}")
    print(f"  on the case record: {verdict['recorded_head'] or '(none)'}; heads from the bus checked: {checked}")
    if (seen := verdict["history"]) is not None:
        print(f"  {seen['stream']} read from {seen['since'] or 'its start'}: {seen['heads']} heads for this case")
        if seen.get("unavailable"):
            print(f"  WARNING: {seen['unavailable']}")
        elif not seen["heads"]:
            print(
                "  WARNING: the bus kept no head for this case since its registration time: older than the "
                "stream's retention or than the streams, or that time was altered on the record"
            )
    if verdict["intact"]:
        print("  intact: every entry is the one its successor, the record and the bus's heads say")
        return 0
    f = verdict["finding"]
    print(f"  ALTERED at entry {f['index']} ({f['kind']}): {f['detail']}")
    return 1


def register(sub) -> None:
    people = sub.add_parser("people", help="the embedded issuer: people, their tokens, its key").add_subparsers(
        dest="action", required=True
    )
    add = people.add_parser("add", help="add (or change) a person with a role and scope")
    add.add_argument("tenant")
    add.add_argument("subject", help="the person's id (a worker number, a staff id)")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--scope", help="a street/community/grid code of the grid tree, or a department id")
    add.add_argument("--name")
    lst = people.add_parser("list", help="the county's people")
    lst.add_argument("tenant")
    tok = people.add_parser("token", help="a signed token (JWT) for a person, printed")
    tok.add_argument("tenant")
    tok.add_argument("subject")
    tok.add_argument("--ttl", type=int, default=8 * 3600, help="seconds (default: 8 hours; at most 12)")
    rev = people.add_parser("revoke", help="refuse a person's tokens (or one token) from now on")
    rev.add_argument("tenant")
    rev.add_argument("subject", nargs="?")
    rev.add_argument("--jti", help="one token's id instead of all of a person's")
    rot = people.add_parser("rotate-key", help="sign with a new key; the old one verifies until its tokens expire")
    rot.add_argument("tenant")
    jwks = people.add_parser("jwks", help="the public keys (what /.well-known/jwks.json serves)")
    jwks.add_argument("tenant")
    for p in (add, lst, tok, rev, rot, jwks):
        p.set_defaults(func=cmd_people)

    audit = sub.add_parser(
        "audit",
        help="the county's audit trail: refusals and reads of personal data (audit TENANT); "
        "a case's timeline proved untouched or where it was altered (audit verify TENANT CASE)",
        usage="onegrid audit TENANT [options] | onegrid audit verify TENANT CASE [--head N:SHA256 ...] [--json]",
    )
    audit.add_argument("words", nargs="+", metavar="TENANT | verify TENANT CASE")
    audit.add_argument("--after", default="-", help="an entry id: the entries after it")
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--subject")
    audit.add_argument("--outcome", choices=("refused", "unauthenticated", "read"))
    audit.add_argument(
        "--head",
        action="append",
        metavar="N:SHA256",
        help="verify: a chain head a lifecycle event carried (its ce-chainhead); repeatable",
    )
    audit.add_argument(
        "--no-history",
        action="store_true",
        help="verify: do not read the heads the bus carried from the county's history.lifecycle stream",
    )
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(func=cmd_audit)
