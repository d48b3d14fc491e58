"""Email codes over SMTP with the standard library: multipart/alternative, text and HTML."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from adapters.messaging.base import Accepted, ProviderError, redact
from adapters.messaging.templates import Rendered
from application.ports import OutboundCode

SECURITY = ("starttls", "tls", "none")


class SmtpEmailProvider:
    """One connection per message (codes are rare and a kept connection goes stale).

    `security` is "starttls" (submission on 587, the default), "tls" (implicit TLS on 465) or
    "none" (a relay on localhost). Login only when a username is given, and never without TLS
    unless `allow_plaintext_login` says so (a local test server)."""

    def __init__(
        self,
        *,
        host: str,
        port: int = 587,
        sender: str,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        allow_plaintext_login: bool = False,
        name: str = "smtp",
    ) -> None:
        if security not in SECURITY:
            raise ValueError(f"security must be one of {SECURITY}")
        if username and security == "none" and not allow_plaintext_login:
            raise ValueError("refusing to send an SMTP password without TLS")
        address = parseaddr(sender)[1]
        if "@" not in address:
            raise ValueError("the sender must be an email address")
        self.name = name
        self.channels = frozenset({"email"})
        self._host = host
        self._port = port
        self._sender = sender
        self._domain = address.rpartition("@")[2]
        self._security = security
        self._username = username
        self._password = password
        self._timeout = timeout
        self._context = ssl_context or ssl.create_default_context()
        # the EHLO name; smtplib would otherwise look up this host's FQDN on every connection
        self._local_hostname = local_hostname or self._domain

    def _connect(self) -> smtplib.SMTP:
        if self._security == "tls":
            return smtplib.SMTP_SSL(
                self._host,
                self._port,
                local_hostname=self._local_hostname,
                timeout=self._timeout,
                context=self._context,
            )
        return smtplib.SMTP(
            self._host, self._port, local_hostname=self._local_hostname, timeout=self._timeout
        )

    def build(self, message: OutboundCode, content: Rendered) -> EmailMessage:
        if content.email is None:
            raise ProviderError("no email was rendered", provider_fault=False)
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = message.to
        email["Subject"] = content.email.subject
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = make_msgid(domain=self._domain)
        email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
        email.set_content(content.email.text)
        email.add_alternative(content.email.html, subtype="html")
        # after the parts: making the message multipart moves Content-* headers into a part
        email["Content-Language"] = content.email.language
        return email

    def send(self, message: OutboundCode, content: Rendered) -> Accepted:
        if message.channel != "email":
            raise ProviderError(f"SMTP does not send {message.channel}", provider_fault=False)
        try:
            email = self.build(message, content)
        except ValueError:  # e.g. a recipient header that cannot be written
            raise ProviderError("the email cannot be built", provider_fault=False) from None
        secrets = (message.code, self._password, self._username)
        try:
            with self._connect() as smtp:
                if self._security == "starttls":
                    smtp.starttls(context=self._context)
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as error:
            codes = sorted({str(code) for code, _ in error.recipients.values()})
            fault = any(c.startswith("4") for c in codes)  # a 4xx is temporary, like a 5xx API
            raise ProviderError(
                f"recipient refused ({', '.join(codes)})", provider_fault=fault
            ) from None
        except smtplib.SMTPAuthenticationError as error:
            raise ProviderError(f"login refused ({error.smtp_code})") from None
        except smtplib.SMTPNotSupportedError:
            raise ProviderError("the server does not offer STARTTLS or AUTH") from None
        except smtplib.SMTPSenderRefused as error:
            raise ProviderError(f"sender refused ({error.smtp_code})") from None
        except smtplib.SMTPResponseException as error:
            raw = error.smtp_error
            reply = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            raise ProviderError(
                redact(f"SMTP {error.smtp_code}: {reply}", secrets),
                provider_fault=error.smtp_code < 500 or error.smtp_code in (530, 535),
            ) from None
        except TimeoutError:
            raise ProviderError("timed out") from None
        except (smtplib.SMTPException, ssl.SSLError, OSError) as error:
            raise ProviderError(f"could not deliver ({type(error).__name__})") from None
        return Accepted(str(email["Message-ID"]))
