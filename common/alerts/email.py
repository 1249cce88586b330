"""Alerts by email: smtplib in a worker thread (STARTTLS, implicit TLS or plain).

Certificates are verified against the system trust store; an SMTP relay with
a private CA is trusted by pointing SSL_CERT_FILE at that CA, or by passing an
`ssl_context`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import smtplib
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage

from crontrio.common.alerts.base import EMAIL, ChannelError, PermanentChannelError
from crontrio.common.alerts.message import Alert, one_line
from crontrio.common.config import AlertConfig

log = logging.getLogger(__name__)


class EmailChannel:
    name = EMAIL

    def __init__(
        self,
        cfg: AlertConfig,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        max_workers: int = 4,
    ) -> None:
        if cfg.smtp_security not in ("starttls", "ssl", "none"):
            raise ValueError(f"smtp_security must be starttls, ssl or none, got {cfg.smtp_security!r}")
        self.cfg = cfg
        self.timeout = timeout
        self._ssl_context = ssl_context
        # Our own threads, not the loop's default executor: a hung SMTP server
        # must neither starve other to_thread users nor hold up loop shutdown.
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="alert-smtp")
        self._lock = threading.Lock()
        self._live: set[smtplib.SMTP] = set()
        self._closed = False

    def build_message(self, alert: Alert, recipients: list[str]) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.cfg.mail_from
        msg["To"] = ", ".join(recipients)
        msg["Subject"] = one_line(alert.subject, 998)
        msg["Date"] = email.utils.formatdate(usegmt=True)
        msg["Message-ID"] = email.utils.make_msgid(domain=_domain_of(self.cfg.mail_from))
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Crontrio-Severity"] = alert.severity
        msg["X-Crontrio-Alert-Key"] = one_line(alert.key, 900)
        msg.set_content(alert.text)
        return msg

    async def send(self, alert: Alert, recipients: list[str]) -> None:
        if not recipients:
            raise PermanentChannelError("no email recipients")
        if self._closed:
            raise PermanentChannelError("email channel closed")
        msg = self.build_message(alert, recipients)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._send_blocking, msg, recipients)

    def _context(self) -> ssl.SSLContext:
        # Built per send so SSL_CERT_FILE is read at send time.
        return self._ssl_context or ssl.create_default_context()

    def _send_blocking(self, msg: EmailMessage, recipients: list[str]) -> None:
        cfg = self.cfg
        smtp: smtplib.SMTP
        if cfg.smtp_security == "ssl":
            smtp = _SMTPSSL(cfg.smtp_host, timeout=self.timeout, context=self._context())
        else:
            smtp = _SMTP(cfg.smtp_host, timeout=self.timeout)
        with self._lock:
            if self._closed:
                raise PermanentChannelError("email channel closed")
            self._live.add(smtp)
        try:
            try:
                smtp.connect(cfg.smtp_host, cfg.smtp_port)
                smtp.ehlo()
                if cfg.smtp_security == "starttls":
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if cfg.smtp_username:
                    smtp.login(cfg.smtp_username, cfg.smtp_password)
                envelope_from = email.utils.parseaddr(cfg.mail_from)[1] or cfg.mail_from
                refused = smtp.send_message(msg, from_addr=envelope_from, to_addrs=recipients)
                if refused:
                    # Some got it: retrying would send those a second copy.
                    log.warning(
                        "alert mail %r refused for %s",
                        msg["Subject"],
                        ", ".join(f"{r} ({c} {m!r})" for r, (c, m) in refused.items()),
                    )
            except smtplib.SMTPAuthenticationError as exc:
                raise ChannelError(
                    f"SMTP {cfg.smtp_host}:{cfg.smtp_port}: login refused: {exc.smtp_code} {exc.smtp_error!r}"
                ) from exc
            except smtplib.SMTPRecipientsRefused as exc:
                raise ChannelError(f"SMTP {cfg.smtp_host}:{cfg.smtp_port}: every recipient refused: {exc.recipients}") from exc
            except (smtplib.SMTPException, OSError) as exc:
                raise ChannelError(
                    f"SMTP {cfg.smtp_host}:{cfg.smtp_port} ({cfg.smtp_security}): {type(exc).__name__}: {exc}"
                ) from exc
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()  # the mail is accepted; a lost goodbye changes nothing
        finally:
            smtp.close()
            with self._lock:
                self._live.discard(smtp)

    async def aclose(self) -> None:
        """Abort connections still in flight (their sends fail at once) and let the threads go."""
        with self._lock:
            self._closed = True
            live = list(self._live)
        for smtp in live:
            sock = getattr(smtp, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
        self._executor.shutdown(wait=False, cancel_futures=True)


# Made unconnected, so that close() can find (and abort) a connection whose
# server never answers; smtplib then verifies TLS against the host given to the
# constructor (`_host`), which must therefore be set here.
class _SMTP(smtplib.SMTP):
    def __init__(self, tls_host: str, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._host = tls_host


class _SMTPSSL(smtplib.SMTP_SSL):
    def __init__(self, tls_host: str, *, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(timeout=timeout, context=context)
        self._host = tls_host


def _domain_of(address: str) -> str | None:
    addr = email.utils.parseaddr(address)[1]
    _, at, domain = addr.rpartition("@")
    return domain if at and domain else None
