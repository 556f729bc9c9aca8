"""Settings from TOML and environment; errors name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.config import load_config, shard_queues
from indexer.errors import ConfigError

ENV = {
    "GENESYS_REGION": "eu_central_1",
    "GENESYS_CLIENT_ID": "id",
    "GENESYS_CLIENT_SECRET": "secret",
    "GENESYS_QUEUES": "Billing, Support ,",
}


def test_environment_only() -> None:
    """A region gives the API and login hosts (reference §1); queues are split and trimmed."""
    config = load_config(None, ENV)
    assert config.genesys is not None
    assert config.genesys.api_base_url == "https://api.mypurecloud.de"
    assert config.genesys.login_base_url == "https://login.mypurecloud.de"
    assert config.genesys.queues == ("Billing", "Support")
    assert "secret" not in repr(config)


def test_toml_then_environment_wins(tmp_path: Path) -> None:
    """TOML supplies settings; environment variables override them."""
    path = tmp_path / "indexer.toml"
    path.write_text(
        '[genesys]\napi_base_url = "http://a"\nlogin_base_url = "http://l"\nclient_id = "toml-id"\n'
        'client_secret = "s"\nqueues = ["Q1"]\n[completion]\ngrace_period_s = 2.5\n'
        '[plugins.opensearch]\nurl = "http://os:9200"\n'
    )
    config = load_config(path, {"GENESYS_CLIENT_ID": "env-id"})
    assert config.genesys is not None
    assert (config.genesys.client_id, config.genesys.api_base_url) == ("env-id", "http://a")
    assert config.completion.grace_period_s == 2.5
    assert config.plugin_settings("opensearch") == {"url": "http://os:9200"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({k: v for k, v in ENV.items() if k != "GENESYS_CLIENT_ID"}, "GENESYS_CLIENT_ID is not set"),
        ({k: v for k, v in ENV.items() if k != "GENESYS_REGION"}, "GENESYS_REGION is not set"),
        ({**ENV, "GENESYS_REGION": "mars_1"}, "GENESYS_REGION 'mars_1' is not one of"),
        ({**ENV, "GENESYS_QUEUES": " , "}, "GENESYS_QUEUES is not set"),
        (
            {**ENV, "GENESYS_API_BASE_URL": "api.x", "GENESYS_LOGIN_BASE_URL": "https://l"},
            "GENESYS_API_BASE_URL",
        ),
    ],
)
def test_errors_name_the_setting(env: dict[str, str], message: str) -> None:
    """Each missing or invalid setting gives one line naming it."""
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(None, env)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[completion]\ngrace_period = 1\n", "grace_period"),
        ("[completion]\ngrace_period_s = 'soon'\n", "grace_period_s"),
        ("[genesys]\nregon = 'us_east_1'\n", "genesys.regon"),
        ("not toml = = 1", "not valid TOML"),
        ("[stream]\nmax_channels = 11\n", "stream.max_channels must be between 1 and 10"),
        (
            "[completion]\nmax_transcript_backlog = 0\n",
            "completion.max_transcript_backlog must be at least 1",
        ),
        ("source = 'kafka'\n", "must be websocket or sqs, not 'kafka'"),
        ("source = 'sqs'\n", "source = sqs needs sqs.queue_url"),
        (
            "source = 'sqs'\n[sqs]\nqueue_url = 'q'\nwait_time_s = 30\n",
            "sqs.wait_time_s must be between 0 and 20",
        ),
    ],
)
def test_bad_config_files(tmp_path: Path, toml: str, message: str) -> None:
    """Typos and wrong types in the TOML file are errors naming the key."""
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(path, ENV)


def test_shards_split_the_queues_disjointly_and_completely() -> None:
    """Every replica computes the same split; together they follow each queue exactly once."""
    queues = {f"q{n:02}": f"Queue {n}" for n in range(10)}
    shares = [shard_queues(dict(reversed(queues.items())), f"{i}/3") for i in range(3)]
    assert sorted(q for share in shares for q in share) == sorted(queues)
    assert [len(share) for share in shares] == [4, 3, 3]
    assert shard_queues(queues, None) == queues


@pytest.mark.parametrize("shard", ["3/3", "1", "a/2", "-1/2"])
def test_bad_shards_name_the_setting(shard: str) -> None:
    with pytest.raises(ConfigError, match="INDEXER_SHARD"):
        load_config(None, {**ENV, "INDEXER_SHARD": shard})


def test_a_shard_without_queues_is_an_error() -> None:
    with pytest.raises(ConfigError, match="GENESYS_QUEUES"):
        shard_queues({"q1": "Billing"}, "1/2")


def test_the_sqs_source_from_the_environment() -> None:
    """``INDEXER_SOURCE``, ``INDEXER_SQS_*`` and the AWS region variables; a region in the
    file wins over the environment's, and ``AWS_REGION`` over ``AWS_DEFAULT_REGION``."""
    env = {
        **ENV,
        "INDEXER_SOURCE": "sqs",
        "INDEXER_SQS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/genesys",
        "INDEXER_SQS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "eu-west-1",
    }
    config = load_config(None, env)
    assert (config.source, config.sqs.queue_url, config.sqs.region) == (
        "sqs",
        env["INDEXER_SQS_QUEUE_URL"],
        "eu-west-1",
    )
    assert config.sqs.endpoint_url == "http://127.0.0.1:5000" and config.sqs.wait_time_s == 20
