"""AlertSender: what services hand alerts to.

`submit()` is called on the firing path, so it only throttles and queues:
it never blocks, never raises and never waits for a server. Each channel has
its own bounded queue and a few worker tasks, so a hung SMTP server delays
neither the caller nor the webhook. A failed send is retried with
exponential backoff, then logged at ERROR; nothing is raised to anyone.

Throttling: an alert with the same key on the same channel as one sent less
than ``throttle_seconds`` ago is not sent but counted, and the next one that
goes out says "(N similar alerts suppressed)".
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential

from crontrio.common.alerts.base import EMAIL, SMS, WEBHOOK, Channel, ChannelError, PermanentChannelError
from crontrio.common.alerts.message import Alert
from crontrio.common.config import AlertConfig

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000


@dataclass
class _Work:
    alert: Alert
    recipients: list[str]


@dataclass
class _Throttle:
    sent_at: float
    suppressed: int = 0


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ChannelError) and not isinstance(exc, PermanentChannelError)


def _dedupe(items: Iterable[str], *, fold_case: bool = False) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        key = item.lower() if fold_case else item
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


class AlertSender:
    """Throttles, queues and sends alerts on every configured channel.

    A channel is on when its destination is configured: ``smtp_host``
    (email), ``sms_url`` (sms), ``webhook_url`` (webhook).
    """

    def __init__(
        self,
        cfg: AlertConfig,
        mail_lists: Mapping[str, str],
        *,
        queue_size: int = QUEUE_SIZE,
        concurrency: int = 4,
        timeout: float = 15.0,
        retry_backoff: float = 1.0,
        retry_max_backoff: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`timeout` bounds each network step of one send; `retry_backoff` is the first
        wait before a retry, doubled each time up to `retry_max_backoff`; `ssl_context`
        verifies the SMTP server (default: the system trust store, or SSL_CERT_FILE)."""
        self.cfg = cfg
        self._mail_lists = dict(mail_lists)
        self._mail_lists_folded = {k.lower(): v for k, v in mail_lists.items()}
        self._concurrency = max(1, concurrency)
        self._retry_backoff = retry_backoff
        self._retry_max_backoff = retry_max_backoff
        self._clock = clock
        self._channels: dict[str, Channel] = {}
        # Each channel's module is imported only when it is configured: SMS
        # and webhooks bring in an HTTP client (~30 ms of a service's
        # start-up), of no use where no alert goes out that way.
        if cfg.smtp_host:
            from crontrio.common.alerts.email import EmailChannel

            self._channels[EMAIL] = EmailChannel(cfg, ssl_context=ssl_context, timeout=timeout, max_workers=self._concurrency)
        if cfg.sms_url:
            from crontrio.common.alerts.sms import SmsChannel

            self._channels[SMS] = SmsChannel(cfg, timeout=timeout)
        if cfg.webhook_url:
            from crontrio.common.alerts.webhook import WebhookChannel

            self._channels[WEBHOOK] = WebhookChannel(cfg, timeout=timeout)
        self._queues: dict[str, asyncio.Queue[_Work]] = {name: asyncio.Queue(maxsize=queue_size) for name in self._channels}
        self._throttle: dict[tuple[str, str], _Throttle] = {}
        self._prune_at = 1024
        self._unknown_names: set[str] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._closing = False
        self._in_flight = 0
        # Counters, for tests and the status endpoint (one per channel delivery;
        # an SMS to three phones counts three).
        self.sent = 0
        self.failed = 0
        self.suppressed = 0
        self.dropped = 0

    # ------------------------------------------------------------ public API

    def channels_available(self) -> list[str]:
        return list(self._channels)

    def stats(self) -> dict[str, int]:
        queued = sum(q.qsize() for q in self._queues.values())
        return {
            "sent": self.sent,
            "failed": self.failed,
            "suppressed": self.suppressed,
            "dropped": self.dropped,
            "queued": queued,
            "in_flight": self._in_flight,
        }

    def resolve_emails(self, entries: Iterable[str]) -> list[str]:
        """Addresses for a list of addresses and [alarm_mail_list] names (a name may
        stand for several addresses, comma-separated). Unknown names are logged once and skipped."""
        out: list[str] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if "@" in entry:
                out.append(entry)
                continue
            value = self._mail_lists.get(entry)
            if value is None:
                value = self._mail_lists_folded.get(entry.lower())
            if value is None:
                if entry not in self._unknown_names:
                    self._unknown_names.add(entry)
                    log.warning("alert recipient %r is neither an address nor an [alarm_mail_list] name: skipped", entry)
                continue
            out.extend(a.strip() for a in re.split(r"[,;]", value) if a.strip())
        return _dedupe(out, fold_case=True)

    def submit(
        self,
        alert: Alert,
        *,
        emails: Iterable[str] = (),
        phones: Iterable[str] = (),
        channels: Iterable[str] | None = None,
    ) -> None:
        """Queue `alert` for sending; returns at once and never raises.

        `emails` are addresses or [alarm_mail_list] names, `phones` numbers;
        `channels` None means every configured channel. Email and SMS are
        skipped when they have no recipient. Safe to call from another thread.
        """
        try:
            args = (alert, tuple(emails), tuple(phones), None if channels is None else tuple(channels))
            loop = self._loop
            if loop is not None and threading.get_ident() != self._loop_thread and not loop.is_closed():
                loop.call_soon_threadsafe(self._submit, *args)
            else:
                self._submit(*args)
        except Exception:
            log.exception("alert %r not queued", getattr(alert, "key", alert))

    def submit_system(self, alert: Alert, *, channels: Iterable[str] | None = None) -> None:
        """`submit` to the configured system recipients (``system_emails``, ``system_phones``)."""
        self.submit(alert, emails=self.cfg.system_emails, phones=self.cfg.system_phones, channels=channels)

    async def start(self) -> None:
        """Start the workers (one small pool per channel). Alerts submitted before are kept."""
        if self._workers or self._closing:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        for name in self._channels:
            for i in range(self._concurrency):
                self._workers.append(asyncio.create_task(self._work(name), name=f"alerts-{name}-{i}"))
        if self._channels:
            log.info("alerts: channels %s", ", ".join(self._channels))

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - a drain deadline, part of the API
        """Wait until everything queued so far is sent or given up; False on timeout."""
        if not self._workers:
            return all(q.empty() for q in self._queues.values())
        try:
            await asyncio.wait_for(self._join(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a drain deadline, part of the API
        """Stop taking alerts, send what is queued for up to `timeout` seconds, then drop the rest."""
        self._closing = True
        drained = await self.flush(timeout) if self._workers else all(q.empty() for q in self._queues.values())
        if not drained:
            left = sum(q.qsize() for q in self._queues.values()) + self._in_flight
            self.dropped += left
            log.warning("alerts: %d alert(s) still queued or being sent after %.1fs at shutdown: dropped", left, timeout)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        for channel in self._channels.values():
            try:
                await channel.aclose()
            except Exception:
                log.exception("alerts: closing the %s channel failed", channel.name)

    # ------------------------------------------------------------- internals

    async def _join(self) -> None:
        for queue in self._queues.values():
            await queue.join()

    def _submit(self, alert: Alert, emails: tuple[str, ...], phones: tuple[str, ...], channels: tuple[str, ...] | None) -> None:
        if self._closing:
            self._drop(alert, "the sender is closed")
            return
        if channels is None:
            names = list(self._channels)
        else:
            names = [c for c in _dedupe(channels) if c in self._channels]
            if len(names) != len(set(channels)):
                log.debug("alert %s: channel(s) %s not configured", alert.key, sorted(set(channels) - set(self._channels)))
        for name in names:
            batches: list[list[str]]
            if name == EMAIL:
                addresses = self.resolve_emails(emails)
                if not addresses:
                    continue
                batches = [addresses]
            elif name == SMS:
                numbers = _dedupe(p.strip() for p in phones if p.strip())
                if not numbers:
                    continue
                batches = [[n] for n in numbers]  # one delivery per phone: a retry re-sends to that phone only
            else:
                batches = [[]]
            queue = self._queues[name]
            if queue.maxsize and queue.maxsize - queue.qsize() < len(batches):
                self._drop(alert, f"the {name} queue is full ({queue.maxsize})")
                continue
            suppressed = self._pass_throttle(alert.key, name)
            if suppressed is None:
                continue
            outgoing = alert.with_suppressed(suppressed)
            for recipients in batches:
                queue.put_nowait(_Work(outgoing, recipients))

    def _drop(self, alert: Alert, why: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning("alert %s dropped: %s (%d dropped so far)", alert.key, why, self.dropped)

    def _pass_throttle(self, key: str, channel: str) -> int | None:
        """None when the alert is suppressed; else how many were suppressed since the last one sent."""
        window = self.cfg.throttle_seconds
        if window <= 0:
            return 0
        now = self._clock()
        state = self._throttle.get((key, channel))
        if state is not None and now - state.sent_at < window:
            state.suppressed += 1
            self.suppressed += 1
            return None
        count = state.suppressed if state is not None else 0
        self._throttle[(key, channel)] = _Throttle(sent_at=now)
        if len(self._throttle) > self._prune_at:
            self._prune(now)
        return count

    def _prune(self, now: float) -> None:
        window = self.cfg.throttle_seconds
        self._throttle = {k: s for k, s in self._throttle.items() if s.suppressed or now - s.sent_at < window}
        self._prune_at = max(1024, 2 * len(self._throttle))

    async def _work(self, name: str) -> None:
        queue = self._queues[name]
        while True:
            work = await queue.get()
            self._in_flight += 1
            try:
                await self._deliver(name, work)
            finally:
                self._in_flight -= 1
                queue.task_done()

    async def _deliver(self, name: str, work: _Work) -> None:
        channel = self._channels[name]
        alert = work.alert
        to = f" to {', '.join(work.recipients)}" if work.recipients else ""
        tries = 0

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "alert %s by %s%s failed (try %d): %s; retrying in %.1fs", alert.key, name, to, state.attempt_number, exc, wait
            )

        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.cfg.retries + 1),
                wait=wait_exponential(multiplier=self._retry_backoff, max=self._retry_max_backoff),
                retry=retry_if_exception(_retryable),
                before_sleep=before_sleep,
                reraise=True,
            ):
                with attempt:
                    tries += 1
                    await channel.send(alert, list(work.recipients))
        except ChannelError as exc:
            self.failed += 1
            log.error(
                "alert %s NOT sent by %s%s after %d tr%s: %s", alert.key, name, to, tries, "y" if tries == 1 else "ies", exc
            )
            return
        except Exception as exc:  # a bug in a channel must not end the worker
            self.failed += 1
            log.error("alert %s NOT sent by %s%s: unexpected %s", alert.key, name, to, type(exc).__name__, exc_info=True)
            return
        self.sent += 1
        log.info(
            "alert %s sent by %s%s%s: %s", alert.key, name, to, f" (after {tries} tries)" if tries > 1 else "", alert.subject
        )
