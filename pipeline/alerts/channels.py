"""External delivery channels: a JSON webhook and e-mail over SMTP.

Guarantees:
- ``send(alert)`` makes one attempt per target and raises ``DeliveryError`` with a sentence that
  names the target (webhook URLs shown as scheme://host only: their paths often hold tokens) and
  what went wrong: an HTTP status, a refused connection, "did not answer within N s". Retrying is
  the notifier's job. Every network call has a timeout: a silent server cannot hang a thread forever.
- Webhook: ``POST`` of ``payload(alert)`` as JSON (``Content-Type: application/json``), any 2xx is
  success. The payload carries the alert's ``id``: a receiver can drop the rare at-least-once
  repeat. It has a ``text`` field so Slack/Mattermost-style incoming webhooks show it as is.
  Credentials in a URL (``https://user:pass@host/...``) are taken out of it before any request and
  sent as HTTP basic auth (``Authorization``, not repeated on a redirect); they never appear in a
  log line, an error or ``targets()``.
- E-mail: one message to every ``STOCKMON_ALERT_EMAIL_TO`` address; ``starttls`` (default, port
  587), ``ssl`` (port 465) or ``none``; certificates are verified (system CAs, plus
  ``STOCKMON_SMTP_CAFILE``); login only when a username is configured. The password is never
  logged or put in an error. A refusal names the step that failed (STARTTLS only when it was asked
  for, the login when the server offers no AUTH, the message otherwise).
"""

from __future__ import annotations

import base64
import json
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from datetime import datetime
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from ..config import APP_NAME, Settings
from ..models import iso, utcnow


class DeliveryError(RuntimeError):
    """One delivery attempt failed; the message says where and why. ``done`` lists the target
    indexes that did succeed in that attempt (a webhook with several URLs), else it is empty."""

    def __init__(self, message: str, done: list[int] | None = None):
        super().__init__(message)
        self.done: list[int] = list(done or [])


class Channel(Protocol):
    """What the notifier needs of a delivery channel (``Webhook``, ``Email``)."""

    name: str

    def targets(self) -> list[str]:
        """Where it delivers, safe to show (webhooks as scheme://host, e-mail addresses)."""
        ...

    def send(self, alert: dict, skip: frozenset[int] = frozenset()) -> list[int]:
        """Deliver ``alert`` to every target not in ``skip``; return the target indexes now done.
        Raises ``DeliveryError`` (with ``.done``) when any target failed."""
        ...


def configured(settings: Settings) -> dict[str, bool]:
    return {
        "webhook": bool(settings.alert_webhook_urls),
        "email": bool(settings.smtp_host and settings.alert_email_to),
    }


def short_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: no credentials, no path (paths often hold tokens)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(invalid URL)"
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{port}' if port else ''}"


def split_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without ``user:password@`` and the ``Authorization`` header value (HTTP basic, the
    percent-encoded parts decoded) that carries them, or None when the URL has none.
    Raises ``ValueError`` for a URL that cannot be split (its text is not in the message)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValueError("the URL cannot be parsed") from None
    if parts.username is None and parts.password is None:
        return url, None
    netloc = (f"[{host}]" if host and ":" in host else host or "") + (f":{port}" if port else "")
    clean = urlunsplit(parts._replace(netloc=netloc))
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
    return clean, "Basic " + base64.b64encode(pair).decode("ascii")


def payload(alert: dict) -> dict:
    def when(value):
        return iso(value) if isinstance(value, datetime) else value

    return {
        "id": alert.get("_id"),
        "app": APP_NAME,
        "test": bool(alert.get("test")),
        "text": f"🔔 {alert.get('message', '')}",
        "message": alert.get("message"),
        "rule_id": alert.get("rule_id"),
        "rule": alert.get("description"),
        "symbol": alert.get("symbol"),
        "kind": alert.get("kind"),
        "price": alert.get("price"),
        "value": alert.get("value"),
        "ts": when(alert.get("ts")),
        "fired_at": when(alert.get("fired_at")),
        "note": alert.get("note") or "",
    }


class Webhook:
    name = "webhook"

    def __init__(self, settings: Settings):
        self.urls = tuple(settings.alert_webhook_urls)
        self.timeout = settings.alert_webhook_timeout

    def targets(self) -> list[str]:
        return [short_url(u) for u in self.urls]

    def post(self, url: str, body: dict) -> int:
        """POST ``body`` as JSON; the HTTP status (2xx) or ``DeliveryError`` naming ``short_url(url)``."""
        data = json.dumps(body, default=str).encode()
        where = short_url(url)
        try:
            clean, auth = split_credentials(url)
            request = urllib.request.Request(
                clean,
                data=data,
                method="POST",
                headers={"Content-Type": "application/json", "User-Agent": "stockmon-alerts/1"},
            )
        except ValueError as exc:  # never echo the URL: it may hold a token or a password
            raise DeliveryError(
                f"webhook {where}: the URL is not usable ({exc.__class__.__name__})"
            ) from None
        if auth:
            request.add_unredirected_header("Authorization", auth)  # not sent on to a redirect's host
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read(65536)
                return response.status
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"webhook {where} answered HTTP {exc.code} {exc.reason}") from None
        except TimeoutError:
            raise DeliveryError(f"webhook {where} did not answer within {self.timeout:g} s") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise DeliveryError(f"webhook {where} did not answer within {self.timeout:g} s") from None
            raise DeliveryError(f"webhook {where} is not reachable: {reason}") from None
        except OSError as exc:  # the URL has no credentials left in it by now
            raise DeliveryError(f"webhook {where} failed: {exc.__class__.__name__}: {exc}") from None
        except ValueError as exc:  # e.g. http.client.InvalidURL, whose text repeats the URL
            raise DeliveryError(f"webhook {where} failed: {exc.__class__.__name__}") from None

    def send(self, alert: dict, skip: frozenset[int] = frozenset()) -> list[int]:
        """POST to every URL not in ``skip`` (indexes already done); return the indexes now done.
        Raises ``DeliveryError`` after trying all of them if any failed (``.done`` lists the successes)."""
        body = payload(alert)
        done: list[int] = []
        errors: list[str] = []
        for i, url in enumerate(self.urls):
            if i in skip:
                continue
            try:
                self.post(url, body)
                done.append(i)
            except DeliveryError as exc:
                errors.append(str(exc))
        if errors:
            raise DeliveryError("; ".join(errors), done=done)
        return done


class Email:
    name = "email"

    def __init__(self, settings: Settings):
        self.s = settings

    def targets(self) -> list[str]:
        return list(self.s.alert_email_to)

    def message(self, alert: dict) -> EmailMessage:
        s = self.s
        msg = EmailMessage()
        msg["Subject"] = f"[{APP_NAME}] {alert.get('message', 'alert')}"
        msg["From"] = s.smtp_from or s.smtp_username or f"stockmon@{socket.gethostname()}"
        msg["To"] = ", ".join(s.alert_email_to)
        msg["Message-ID"] = f"<{str(alert.get('_id', 'test')).replace('|', '.').replace(':', '')}@stockmon>"
        body = payload(alert)
        lines = [body["message"] or "", "", f"Rule: {body['rule'] or '-'}"]
        if body["note"]:
            lines.append(f"Note: {body['note']}")
        lines += [
            f"Price: {body['price']}",
            f"Price time (UTC): {body['ts']}",
            f"Fired at (UTC): {body['fired_at']}",
            "",
            f"Alert id: {body['id']}",
            f"— {APP_NAME}",
        ]
        msg.set_content("\n".join(lines))
        return msg

    def send(self, alert: dict, skip: frozenset[int] = frozenset()) -> list[int]:
        s = self.s
        where = f"SMTP server {s.smtp_host}:{s.smtp_port}"
        if not s.smtp_host:
            raise DeliveryError("the email channel is not configured: set STOCKMON_SMTP_HOST")
        step = "connect"
        try:
            context = ssl.create_default_context(cafile=s.smtp_cafile)
            client: smtplib.SMTP
            if s.smtp_security == "ssl":
                client = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout, context=context)
            else:
                client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
            with client:
                if s.smtp_security == "starttls":
                    step = "starttls"
                    client.starttls(context=context)
                if s.smtp_username:
                    step = "login"
                    client.login(s.smtp_username, s.smtp_password or "")
                step = "send"
                refused = client.send_message(self.message(alert))
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"{where} refused the login for {s.smtp_username!r} ({exc.smtp_code})"
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            if step == "starttls":
                why = "does not offer STARTTLS; set STOCKMON_SMTP_SECURITY to ssl or none"
            elif step == "login":
                why = (
                    f"offers no login (AUTH) with STOCKMON_SMTP_SECURITY={s.smtp_security}; many servers "
                    "offer it only over TLS (starttls or ssl), or leave STOCKMON_SMTP_USERNAME empty"
                )
            else:
                why = f"does not support what the message needs: {str(exc)[:200]}"
            raise DeliveryError(f"{where} {why}") from None
        except smtplib.SMTPException as exc:
            raise DeliveryError(f"{where} refused the message: {str(exc)[:200]}") from None
        except TimeoutError:
            raise DeliveryError(f"{where} did not answer within {s.smtp_timeout:g} s") from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"{where}: TLS failed ({exc.reason or exc})") from None
        except OSError as exc:
            raise DeliveryError(f"{where} is not reachable: {exc.strerror or exc}") from None
        if refused:
            raise DeliveryError(f"{where} refused recipient(s): {', '.join(refused)}")
        return [0]


def make(settings: Settings) -> dict[str, Channel]:
    """The configured channels by name."""
    ok = configured(settings)
    out: dict[str, Channel] = {}
    if ok["webhook"]:
        out["webhook"] = Webhook(settings)
    if ok["email"]:
        out["email"] = Email(settings)
    return out


def send_test(settings: Settings, channel: str) -> str:
    """Send a test alert through one channel now; return a sentence or raise ``DeliveryError``."""
    channels = make(settings)
    if channel not in channels:
        need = (
            "STOCKMON_ALERT_WEBHOOK_URLS"
            if channel == "webhook"
            else "STOCKMON_SMTP_HOST and STOCKMON_ALERT_EMAIL_TO"
        )
        raise DeliveryError(f"the {channel} channel is not configured: set {need}")
    now = utcnow()
    alert = {
        "_id": f"test|{iso(now)}",
        "test": True,
        "message": f"Test alert from {APP_NAME}",
        "description": "test",
        "symbol": "TEST",
        "kind": "test",
        "price": None,
        "ts": now,
        "fired_at": now,
        "note": "If you can read this, alerts reach you through this channel.",
    }
    target = channels[channel]
    target.send(alert)
    return f"Test alert sent by {channel} to {', '.join(target.targets())}."
