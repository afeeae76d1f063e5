"""Issue 13 item 5: no password of any URI reaches a screen or a log; multi-host URIs work; bad ports are one line."""

from __future__ import annotations

import logging

import pytest

from custscore.config import Settings, check_mongo_hosts
from custscore.errors import ConfigError
from custscore.redact import RedactingFilter, redact
from tests.security.cli_helpers import assert_one_red_line, cli

SECRET = "S3cretPW"


@pytest.mark.parametrize("text, shown", [
    ("mysql://admin:S3cretPW@127.0.0.1:1/", "mysql://admin:***@127.0.0.1:1/"),
    ("mongodb://admin:pw@h1:1,h2:2/?replicaSet=rs0", "mongodb://admin:***@h1:1,h2:2/?replicaSet=rs0"),
    ("mongodb+srv://u:p%40ss@cluster0.example.net/db", "mongodb+srv://u:***@cluster0.example.net/db"),
    ("postgres://u:pa@ss:wo/rd@db:5432/x", "postgres://u:***@db:5432/x"),
    ("redis://TOKEN123@cache:6379", "redis://***@cache:6379"),
    ("mongodb://h:27017/?authMechanismProperties=AWS_SESSION_TOKEN:abc&w=1",
     "mongodb://h:27017/?authMechanismProperties=***&w=1"),
    ("cannot reach mongodb://a:b@h:99999/ (timeout) and http://x:y@z/ either",
     "cannot reach mongodb://a:***@h:99999/ (timeout) and http://x:***@z/ either"),
    ("embedded:/home/me/.custscore/store.sqlite", "embedded:/home/me/.custscore/store.sqlite"),
    ("mongodb://localhost:27017", "mongodb://localhost:27017"),
])
def test_every_uri_shaped_string_loses_its_password(text, shown):
    assert redact(text) == shown


def test_an_unknown_scheme_is_one_red_line_without_the_password(tmp_path):
    result = cli(tmp_path, "status", env={"CUSTSCORE_MONGO_URI": f"mysql://admin:{SECRET}@127.0.0.1:1/"})
    line = assert_one_red_line(result, "mongo URI 'mysql://admin:***@127.0.0.1:1/' is not understood")
    assert SECRET not in result.output and SECRET not in line


def test_a_replica_set_uri_with_several_hosts_is_understood_and_redacted(tmp_path):
    uri = f"mongodb://admin:{SECRET}@127.0.0.1:1,127.0.0.2:2/?replicaSet=rs0&serverSelectionTimeoutMS=200"
    settings = Settings.build(mongo_uri=uri, home=tmp_path, environ={})
    assert settings.backend == "mongodb"
    assert check_mongo_hosts(uri) == [("127.0.0.1", 1), ("127.0.0.2", 2)]
    result = cli(tmp_path, "--mongo-uri", uri, "status")
    assert_one_red_line(result, "cannot reach MongoDB at mongodb://admin:***@127.0.0.1:1,127.0.0.2:2/?replicaSet=rs0")
    assert SECRET not in result.output


@pytest.mark.parametrize("uri, port", [
    ("mongodb://admin:pw@localhost:99999/", "99999"),
    ("mongodb://h1:1,h2:0/?replicaSet=rs0", "0"),
    ("mongodb://h1:abc/", "abc"),
])
def test_a_port_out_of_range_is_one_red_line(tmp_path, uri, port):
    with pytest.raises(ConfigError, match=f"port '{port}'"):
        Settings.build(mongo_uri=uri, home=tmp_path, environ={})
    result = cli(tmp_path, "--mongo-uri", uri, "status")
    assert_one_red_line(result, f"port '{port}'", "is not a port (use 1-65535")
    assert ":pw@" not in result.output


def test_log_records_are_redacted(caplog):
    logger = logging.getLogger("custscore.test.secrets")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="custscore.test.secrets"):
        logger.info("connecting to %s", f"mongodb://admin:{SECRET}@h:1/")
    assert SECRET not in caplog.text and "mongodb://admin:***@h:1/" in caplog.text
