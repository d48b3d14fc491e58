"""Email codes over SMTP against a local aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.messaging.base import ProviderError
from adapters.messaging.smtp import SmtpEmailProvider
from adapters.messaging.templates import TemplateCatalogue
from tests.messaging.conftest import CODE, message

PASSWORD = "smtp-password-not-real"


class Inbox:
    """An aiosmtpd handler that keeps what it receives and refuses chosen recipients."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], EmailMessage, bool]] = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(
            (envelope.mail_from, list(envelope.rcpt_tos), parsed, bool(session.authenticated))
        )
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = (
        isinstance(data, LoginPassword)
        and data.login == b"tessera"
        and data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def plain() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture(scope="module")
def starttls(certificate: tuple[Path, Path]) -> Iterator[tuple[Inbox, int]]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
    )
    controller.start()
    yield inbox, port
    controller.stop()


def smtp(port: int, **kwargs: Any) -> SmtpEmailProvider:
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "sender": "Acme Security <codes@acme.example>",
        "security": "none",
        "timeout": 2.0,
    }
    options.update(kwargs)
    return SmtpEmailProvider(**options)


def test_an_email_is_multipart_text_and_html_in_the_users_language(
    plain: tuple[Inbox, int], catalogue: TemplateCatalogue
) -> None:
    inbox, port = plain
    inbox.received.clear()
    email = message(channel="email", to="bob@example.org", locale="de")
    accepted = smtp(port).send(email, catalogue.render(email))
    sender, recipients, received, _ = inbox.received[-1]
    assert (sender, recipients) == ("codes@acme.example", ["bob@example.org"])
    assert accepted.provider_message_id == received["Message-ID"]
    assert received["Message-ID"].endswith("@acme.example>")
    assert received["Subject"] == "Ihr Bestätigungscode für Acme"
    assert received["Content-Language"] == "de"
    assert received["Auto-Submitted"] == "auto-generated"
    assert received.get_content_type() == "multipart/alternative"
    text = received.get_body(("plain",))
    html = received.get_body(("html",))
    assert text is not None and html is not None
    assert CODE in text.get_content() and "Geben Sie diesen Code ein" in text.get_content()
    assert '<html lang="de" dir="ltr">' in html.get_content() and CODE in html.get_content()


def test_an_arabic_email_has_an_rtl_html_part(
    plain: tuple[Inbox, int], catalogue: TemplateCatalogue
) -> None:
    inbox, port = plain
    email = message(channel="email", to="salma@example.org", locale="ar")
    smtp(port).send(email, catalogue.render(email))
    received = inbox.received[-1][2]
    html = received.get_body(("html",))
    assert html is not None and 'dir="rtl"' in html.get_content()
    assert received["Subject"] == "رمز التحقق الخاص بك لدى Acme"


def test_a_refused_recipient_is_a_message_fault_without_the_code(
    plain: tuple[Inbox, int], catalogue: TemplateCatalogue
) -> None:
    inbox, port = plain
    inbox.refuse["ghost@example.org"] = "550 5.1.1 No such user"
    email = message(channel="email", to="ghost@example.org")
    with pytest.raises(ProviderError) as caught:
        smtp(port).send(email, catalogue.render(email))
    assert caught.value.reason == "recipient refused (550)"
    assert caught.value.provider_fault is False


def test_a_wrong_password_is_a_provider_fault_that_does_not_leak_the_password(
    plain: tuple[Inbox, int], catalogue: TemplateCatalogue
) -> None:
    _, port = plain
    email = message(channel="email", to="bob@example.org")
    provider = smtp(port, username="tessera", password="wrong", allow_plaintext_login=True)
    with pytest.raises(ProviderError) as caught:
        provider.send(email, catalogue.render(email))
    assert caught.value.provider_fault and "login refused" in caught.value.reason
    assert "wrong" not in caught.value.reason


def test_starttls_and_login_deliver(
    starttls: tuple[Inbox, int], certificate: tuple[Path, Path], catalogue: TemplateCatalogue
) -> None:
    inbox, port = starttls
    context = ssl.create_default_context(cafile=str(certificate[0]))
    provider = smtp(
        port, security="starttls", ssl_context=context, username="tessera", password=PASSWORD
    )
    email = message(channel="email", to="bob@example.org", locale="ja")
    provider.send(email, catalogue.render(email))
    _, _, received, authenticated = inbox.received[-1]
    assert authenticated
    assert received["Subject"] == "Acmeの認証コード"


def test_an_untrusted_certificate_is_refused(
    starttls: tuple[Inbox, int], catalogue: TemplateCatalogue
) -> None:
    _, port = starttls
    email = message(channel="email", to="bob@example.org")
    with pytest.raises(ProviderError) as caught:
        smtp(port, security="starttls").send(email, catalogue.render(email))
    assert caught.value.provider_fault and "SSL" in caught.value.reason


def test_a_server_that_is_not_there_is_a_provider_fault(catalogue: TemplateCatalogue) -> None:
    email = message(channel="email", to="bob@example.org")
    with pytest.raises(ProviderError) as caught:
        smtp(free_port()).send(email, catalogue.render(email))
    assert caught.value.provider_fault


def test_a_password_is_never_sent_in_the_clear_by_mistake() -> None:
    with pytest.raises(ValueError, match="without TLS"):
        SmtpEmailProvider(
            host="127.0.0.1",
            sender="codes@acme.example",
            security="none",
            username="u",
            password="p",
        )
