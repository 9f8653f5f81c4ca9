"""KafkaAuth: settings that do not fit together are refused with what to change; the options
handed to aiokafka; secrets never shown."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from contracts import KafkaAuth
from tests.tls import make_server_tls


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_server_tls(tmp_path_factory.mktemp("tls")).ca_pem


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs a SASL username and password"),
        ({"security_protocol": "SASL_PLAINTEXT", "username": "u"}, "needs a SASL username"),
        ({"username": "u", "password": "p"}, "choose SASL_SSL"),
        ({"security_protocol": "SSL", "ssl_certfile": "{ca}"}, "both its certificate and key"),
        ({"ssl_cafile": "{ca}"}, "choose SSL or SASL_SSL"),
        ({"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"}, "not a readable file"),
        ({"security_protocol": "TLS"}, "security_protocol"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "username": "u",
          "password": "p"}, "sasl_mechanism"),
    ],
)  # fmt: skip
def test_inconsistent_settings_say_what_to_change(
    ca: Path, given: dict[str, Any], says: str
) -> None:
    values = {k: v.format(ca=ca) if isinstance(v, str) else v for k, v in given.items()}
    with pytest.raises(ValueError, match=says):
        KafkaAuth(**values)


def test_plaintext_is_the_default_and_adds_nothing_but_the_protocol() -> None:
    assert KafkaAuth().aiokafka_options() == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_gives_a_verifying_context_and_the_credentials(ca: Path) -> None:
    auth = KafkaAuth(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256",
                     username="svc", password="s3cret", ssl_cafile=ca)  # fmt: skip
    options = auth.aiokafka_options()
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert options == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
                       "sasl_plain_username": "svc", "sasl_plain_password": "s3cret"}  # fmt: skip
    assert "s3cret" not in repr(auth) and "s3cret" not in str(auth.model_dump())


def test_sasl_plaintext_has_no_tls_context() -> None:
    auth = KafkaAuth(security_protocol="SASL_PLAINTEXT", username="svc", password="p")
    assert "ssl_context" not in auth.aiokafka_options()
    assert auth.aiokafka_options()["sasl_mechanism"] == "SCRAM-SHA-512"


def test_hostname_checks_can_be_turned_off_but_certificates_are_still_verified(ca: Path) -> None:
    context = KafkaAuth(
        security_protocol="SSL", ssl_cafile=ca, ssl_check_hostname=False
    ).ssl_context()
    assert context is not None
    assert not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
