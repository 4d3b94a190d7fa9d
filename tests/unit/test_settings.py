"""onegrid/kernel/settings.py, the one reader of the environment, and the readers that use it."""

from __future__ import annotations

import pytest
from redis.sentinel import SentinelConnectionPool

from onegrid.adapters.channels import notify_channels
from onegrid.adapters.redis import connect
from onegrid.adapters.redis.replies import text, text_map, texts
from onegrid.kernel import settings

VARIABLES = (
    "ONEGRID_QUEUE_TYPE",
    "RETRY_DELAYS_MS",
    "RABBITMQ_MANAGEMENT_URL",
    "CONTRACTS_DIR",
    "ONEGRID_CONFIG",
    "REDIS_SENTINELS",
    "REDIS_MASTER_NAME",
    "OUTAGE_RETRY_S",
    *(f"NOTIFY_{name}" for name in settings.NOTIFY_OVERRIDES),
)


@pytest.fixture
def clean_env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_defaults(clean_env):
    assert settings.queue_type() == "quorum"
    assert settings.retry_delays_ms() == (1000, 5000, 30000)
    assert settings.outage_retry_s() == 600
    assert settings.management_url() == "http://guest:guest@127.0.0.1:15672"
    assert settings.contracts_dir() == "contracts"
    assert settings.nameko_config() == "config.yml"
    assert settings.notify_override("WEBHOOK_URL") is None


def test_values_from_the_environment(clean_env):
    clean_env.setenv("ONEGRID_QUEUE_TYPE", "classic")
    clean_env.setenv("RETRY_DELAYS_MS", "100, 300,")
    clean_env.setenv("NOTIFY_SMTP_PORT", "2525")
    assert settings.queue_type() == "classic"
    assert settings.retry_delays_ms() == (100, 300)
    assert settings.notify_override("SMTP_PORT") == "2525"


def test_a_queue_type_rabbitmq_does_not_have_is_refused(clean_env):
    clean_env.setenv("ONEGRID_QUEUE_TYPE", "stream")
    with pytest.raises(ValueError, match="quorum or classic"):
        settings.queue_type()


def test_only_the_documented_notify_overrides_are_read(clean_env):
    clean_env.setenv("NOTIFY_WHATEVER", "x")
    with pytest.raises(KeyError):
        settings.notify_override("WHATEVER")


def test_channels_take_secrets_and_overrides_through_settings(clean_env):
    clean_env.setenv("HOOK_SECRET", "s3cret")
    clean_env.setenv("SMS_TOKEN", "tok")
    clean_env.setenv("NOTIFY_WEBHOOK_URL", "http://127.0.0.1:1/override")
    clean_env.setenv("NOTIFY_SMTP_PORT", "2525")
    channels = notify_channels.build(
        {
            "webhook": {"url": "http://manifest", "secret_env": "HOOK_SECRET"},
            "email": {"host": "mail", "port": 25, "sender": "og@example.org"},
            "sms": {"url": "http://sms", "token_env": "SMS_TOKEN"},
        }
    )
    hook, mail, sms = channels["webhook"], channels["email"], channels["sms"]
    assert isinstance(hook, notify_channels.Webhook) and hook.url == "http://127.0.0.1:1/override"
    assert hook.secret == b"s3cret"
    assert isinstance(mail, notify_channels.Email) and (mail.host, mail.port) == ("mail", 2525)
    assert isinstance(sms, notify_channels.Sms) and (sms.url, sms.token) == ("http://sms", "tok")


def test_a_webhook_without_its_secret_refuses_to_start(clean_env):
    clean_env.delenv("HOOK_SECRET", raising=False)
    with pytest.raises(RuntimeError, match="HOOK_SECRET"):
        notify_channels.build({"webhook": {"url": "http://manifest", "secret_env": "HOOK_SECRET"}})


def test_redis_replies_read_as_str_either_way_the_client_was_made():
    assert text(b"a") == text("a") == "a"
    assert texts([b"a", "b"]) == ["a", "b"]
    assert text_map({b"k": b"v", "x": "y"}) == {"k": "v", "x": "y"}
    with pytest.raises(TypeError):
        text(("member", 1.0))  # a (member, score) pair is not a string reply


def test_redis_sentinels_are_read_and_a_malformed_one_is_named(clean_env):
    clean_env.delenv("REDIS_SENTINELS", raising=False)
    assert settings.redis_sentinels() == ()
    clean_env.setenv("REDIS_SENTINELS", "s-0.redis:26379, s-1.redis:26380,")
    assert settings.redis_sentinels() == (("s-0.redis", 26379), ("s-1.redis", 26380))
    clean_env.setenv("REDIS_SENTINELS", "s-0.redis")
    with pytest.raises(ValueError, match="'s-0.redis'"):
        settings.redis_sentinels()


def test_without_sentinels_the_client_is_on_redis_url_and_with_them_on_the_named_primary(clean_env):
    clean_env.delenv("REDIS_SENTINELS", raising=False)
    plain = connect.client("redis://:pw@10.0.0.9:6380/3")
    kwargs = plain.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("10.0.0.9", 6380, 3, "pw")
    clean_env.setenv("REDIS_SENTINELS", "s-0:26379,s-1:26379,s-2:26379")
    clean_env.setenv("REDIS_MASTER_NAME", "county")
    followed = connect.client("redis://u:p%40ss@ignored:6379/2")
    pool = followed.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "county"
    assert [(c.connection_pool.connection_kwargs["host"]) for c in pool.sentinel_manager.sentinels] == [
        "s-0",
        "s-1",
        "s-2",
    ]
    assert {k: pool.connection_kwargs[k] for k in ("db", "username", "password")} == {
        "db": 2,
        "username": "u",
        "password": "p@ss",
    }
    # the Sentinels are asked with a short timeout; the data connections wait well over a
    # WAIT for the replicas (the Sentinels' second there made a slow WAIT a TimeoutError)
    sentinel_kwargs = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
    assert sentinel_kwargs["socket_timeout"] == connect.SENTINEL_TIMEOUT_S
    assert pool.connection_kwargs["socket_timeout"] == connect.DATA_TIMEOUT_S > connect.SENTINEL_TIMEOUT_S


def test_readiness_pings_the_primary_the_sentinels_name_quickly_and_once(clean_env):
    plain = connect.probe_client("redis://10.0.0.9:6380/0", 0.5).connection_pool.connection_kwargs
    assert (plain["host"], plain["socket_timeout"], plain["retry"].get_retries()) == ("10.0.0.9", 0.5, 0)
    clean_env.setenv("REDIS_SENTINELS", "s-0:26379,s-1:26379")
    clean_env.setenv("REDIS_MASTER_NAME", "county")
    pool = connect.probe_client("redis://:pw@ignored:6379/0", 0.5).connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "county"
    assert (pool.connection_kwargs["socket_timeout"], pool.connection_kwargs["retry"].get_retries()) == (0.5, 0)
    asking = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
    assert (asking["socket_timeout"], asking["password"]) == (0.5, "pw")
