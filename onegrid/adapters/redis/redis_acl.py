"""Redis ACL users (Redis >= 6): one per tenant, confined to the tenant's key space."""

from __future__ import annotations

import secrets

import redis


class NotAdmin(RuntimeError):
    """The Redis user of REDIS_URL may not manage ACL users (a tenant's user, not the admin)."""


def supported(client: redis.Redis) -> bool:
    """Whether Redis has ACLs (>= 6); raises NotAdmin when it has them but this user may not
    manage them."""
    try:
        user = client.execute_command("ACL", "WHOAMI")
        client.execute_command("ACL", "GETUSER", user)
        return True
    except redis.exceptions.NoPermissionError as exc:
        raise NotAdmin(
            "the Redis user of REDIS_URL may not manage ACL users: operator commands need Redis's "
            "admin (e.g. default) user, not a tenant's"
        ) from exc
    except redis.ResponseError:
        return False


def _decode(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def get_user(client: redis.Redis, name: str) -> dict | None:
    """ACL GETUSER as {flags, passwords, commands, keys, channels} (strings), or None."""
    raw = client.execute_command("ACL", "GETUSER", name)
    if not raw:
        return None
    if isinstance(raw, dict):
        return {_decode(k): _decode(v) for k, v in raw.items()}
    it = iter(raw)
    return {_decode(k): _decode(v) for k, v in zip(it, it, strict=True)}


def normalised(client: redis.Redis, rules: list[str]) -> dict:
    """How Redis stores `rules`: set them on a throwaway user that cannot log in, read it back."""
    probe = f"onegrid-probe-{secrets.token_hex(6)}"
    try:
        client.execute_command("ACL", "SETUSER", probe, *[r for r in rules if r != "on"], "off")
        user = get_user(client, probe)
        if user is None:  # SETUSER just made it: only a concurrent DELUSER removes it
            raise RuntimeError(f"the probe user {probe} vanished before it was read back")
        user["flags"] = [f for f in user["flags"] if f != "off"] + (["on"] if "on" in rules else [])
        return user
    finally:
        client.execute_command("ACL", "DELUSER", probe)


def set_user(client: redis.Redis, name: str, rules: list[str], password: str | None = None) -> None:
    """Apply `rules` to `name` (created if missing); a password replaces every old one."""
    extra = ["resetpass", f">{password}"] if password else []
    client.execute_command("ACL", "SETUSER", name, *rules, *extra)


def new_password() -> str:
    return secrets.token_urlsafe(32)


def delete_user(client: redis.Redis, name: str) -> bool:
    return bool(client.execute_command("ACL", "DELUSER", name))


def persist(client: redis.Redis) -> str | None:
    """ACL SAVE when Redis has an aclfile; otherwise why the users will not survive a restart."""
    try:
        client.execute_command("ACL", "SAVE")
        return None
    except redis.ResponseError:
        return (
            "Redis has no aclfile, so it keeps ACL users in memory only: after a Redis restart, "
            "`onegrid tenant onboard` creates the tenant's Redis user again, with a new password"
        )
