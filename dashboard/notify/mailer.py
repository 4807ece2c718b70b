"""Hand an email to someone who delivers it: SMTP for real, a list in memory for tests and dev."""
from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

from dashboard.settings import SmtpSettings


@dataclass(frozen=True)
class Message:
    to: str
    subject: str
    text: str
    html: str
    message_id: str = ""  # kept across retries, so a mail client can tell a duplicate
    headers: tuple[tuple[str, str], ...] = ()  # In-Reply-To, References, List-Id, List-Unsubscribe


class DeliveryInDoubt(smtplib.SMTPException):
    """The server received the whole message, then gave no answer (time-out, connection lost).

    It may have queued the message: sending it again could deliver a second copy.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"no answer after the message was sent (it may have arrived): {reason}")


class Mailer(Protocol):
    def send(self, message: Message) -> str:
        """Deliver or raise (DeliveryInDoubt, smtplib.SMTPException, OSError); returns the server's answer."""


class SmtpMailer:
    """One connection per message: a failure never leaves a half-used session behind."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def send(self, message: Message) -> str:
        s = self.settings
        mime = build_mime(message, s.from_address)
        with self._connect() as smtp:
            if s.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password)
            code, answer = smtp.mail(s.from_address)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, answer, s.from_address)
            code, answer = smtp.rcpt(message.to)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({message.to: (code, answer)})
            code, answer = _data(smtp, mime.as_bytes(policy=mime.policy.clone(linesep="\r\n")))
            if code != 250:
                raise smtplib.SMTPDataError(code, answer)
            return f"{code} {answer.decode('utf-8', 'replace')}"

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_seconds,
                                                  context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
        smtp.ehlo()
        return smtp


def _data(smtp: smtplib.SMTP, payload: bytes) -> tuple[int, bytes]:
    """smtplib's data(), with the one moment that matters told apart: once the final "." has
    gone out, a missing answer means the server may have the message (DeliveryInDoubt); any
    failure before that is a plain failure (the server has no complete message to deliver)."""
    smtp.putcmd("data")
    code, answer = smtp.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, answer)
    body = re.sub(rb"(?m)^\.", b"..", payload)  # dot-stuffing (RFC 5321 4.5.2)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    smtp.send(body + b".\r\n")
    try:
        return smtp.getreply()
    except smtplib.SMTPServerDisconnected as exc:  # smtplib's word for a time-out or a closed socket here
        raise DeliveryInDoubt(str(exc)) from exc


@dataclass
class MemoryMailer:
    """Keeps what it was given (Django's mail.outbox); `failures` raise on the next sends."""

    outbox: list[Message] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)

    def send(self, message: Message) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.outbox.append(message)
        return "250 kept in memory"


# RFC 5322's hard limit: a header of up to 998 characters is never folded, so a subject (at most
# 300) keeps its first word on the Subject line (a fold at 78 could start it with a line break).
POLICY = policy.SMTP.clone(max_line_length=998)
EXTRA_HEADERS = ("In-Reply-To", "References", "List-Id", "List-Unsubscribe")


def build_mime(message: Message, from_address: str) -> EmailMessage:
    mime = EmailMessage(policy=POLICY)
    mime["From"] = from_address
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = formatdate(usegmt=True)
    mime["Message-ID"] = message.message_id or make_msgid(domain=domain_of(from_address))
    mime["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a monitor
    for name, value in message.headers:
        if name in EXTRA_HEADERS and value:
            mime[name] = value
    mime.set_content(message.text)
    mime.add_alternative(message.html, subtype="html")
    return mime


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].strip(">").strip() or "localhost"
