"""Delivery of fired alerts from MongoDB: a webhook on a local http.server (first answering 500, or
hanging) and e-mail on a local aiosmtpd server (plain, and STARTTLS with a login); "send test"."""

import ssl
import subprocess
import time

import pytest
from support.alerts import Mailbox, Receiver, ticks
from support.base import make_settings
from support.pipeline import wait_for

from pipeline.alerts import AlertEngine, Notifier, RuleBook
from pipeline.alerts.channels import DeliveryError, send_test


def fire(store, settings, symbol="AAPL", level=100.0, channels=("webhook", "email")) -> dict:
    """One real alert, fired by the engine from two stored prices."""
    rule = RuleBook(store).create(
        {
            "symbol": symbol,
            "kind": "price_above",
            "level": level,
            "note": "take profit?",
            "channels": list(channels),
        }
    )
    events = ticks(symbol, [level - 1, level + 1.5])
    store.write_events(events)
    AlertEngine(store, settings, refresh_s=0).on_stored(events)
    return store.db["alert_events"].find_one({"rule_id": rule.id})


def delivery(store, alert_id, channel) -> dict:
    return store.db["alert_events"].find_one({"_id": alert_id})["delivery"][channel]


def test_webhook_is_delivered_as_json_after_retries_when_it_first_answers_500(stack, tmp_path, store):
    with Receiver(script=[500, 503]) as hook:
        settings = make_settings(
            stack,
            tmp_path,
            db=store.db.name,
            alert_webhook_urls=(hook.url,),
            alert_backoff_s=0.2,
            alert_retries=5,
        )
        alert = fire(store, settings)
        assert set(alert["delivery"]) == {"webhook"}, "e-mail is not configured, so it is not pending"
        notifier = Notifier(store, settings, poll_s=0.05).start()
        try:
            t0 = time.monotonic()
            wait_for(
                lambda: delivery(store, alert["_id"], "webhook")["status"] == "delivered",
                60,
                what="webhook delivery",
            )
            took = time.monotonic() - t0
        finally:
            notifier.stop()
    state = delivery(store, alert["_id"], "webhook")
    assert state["attempts"] == 3 and state["error"] is None and hook.attempts == 3
    assert took >= 0.2 + 0.4 - 0.05, f"retries were not backed off exponentially ({took:.2f}s)"
    body = hook.received[0]["body"]
    assert hook.received[0]["content_type"] == "application/json"
    assert body["id"] == alert["_id"] and body["symbol"] == "AAPL" and body["price"] == 101.5
    assert body["message"] == "AAPL is above 100.00 (last 101.50)" and body["text"].endswith(body["message"])
    assert (
        body["rule"] == "AAPL price rises above 100.00"
        and body["note"] == "take profit?"
        and body["test"] is False
    )
    snap = notifier.snapshot()["webhook"]
    assert (snap["sent"], snap["retries"], snap["failed"], snap["pending"]) == (1, 2, 0, 0)
    assert snap["targets"] == [hook.url.split("/hook")[0]], "the token in the URL path is never shown"


def test_a_hanging_webhook_fails_clearly_and_does_not_delay_email(stack, tmp_path, store):
    with Receiver(script=["hang"] * 10, hang_s=3) as hook, Mailbox() as mail:
        settings = make_settings(
            stack,
            tmp_path,
            db=store.db.name,
            alert_webhook_urls=(hook.url,),
            alert_webhook_timeout=0.5,
            alert_retries=2,
            alert_backoff_s=0.1,
            smtp_host="127.0.0.1",
            smtp_port=mail.port,
            smtp_security="none",
            alert_email_to=("ops@example.com",),
        )
        alert = fire(store, settings)
        notifier = Notifier(store, settings, poll_s=0.05).start()
        try:
            wait_for(
                lambda: delivery(store, alert["_id"], "email")["status"] == "delivered", 60, what="e-mail"
            )
            assert delivery(store, alert["_id"], "webhook")["status"] == "pending", "e-mail went first"
            wait_for(
                lambda: delivery(store, alert["_id"], "webhook")["status"] == "failed",
                60,
                what="webhook failure",
            )
        finally:
            notifier.stop()
    state = delivery(store, alert["_id"], "webhook")
    host = hook.url.split("/hook")[0]
    assert state["attempts"] == 2
    assert state["error"] == f"webhook {host} did not answer within 0.5 s"
    snap = notifier.snapshot()
    assert snap["webhook"]["failed"] == 1 and snap["webhook"]["last_error"] == state["error"]
    assert snap["webhook"]["recent_failures"][-1]["alert"] == alert["_id"]
    assert snap["email"]["sent"] == 1 and snap["email"]["last_error"] is None
    assert len(mail.messages) == 1


def test_email_is_delivered_over_starttls_with_a_login(stack, tmp_path, store):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from pipeline.embedded.stack import free_port

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    received, logins = [], []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            b"alerts",
            b"s3cret",
        )
        logins.append(ok)
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself

    port = free_port()
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        settings = make_settings(
            stack,
            tmp_path,
            db=store.db.name,
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="starttls",
            smtp_username="alerts",
            smtp_password="s3cret",
            smtp_from="monitor@example.com",
            smtp_cafile=str(cert),
            alert_email_to=("ops@example.com", "me@example.com"),
        )
        alert = fire(store, settings, symbol="NVDA", level=50)
        notifier = Notifier(store, settings, poll_s=0.05).start()
        try:
            wait_for(
                lambda: delivery(store, alert["_id"], "email")["status"] == "delivered", 60, what="e-mail"
            )
        finally:
            notifier.stop()
        assert logins == [True]
        envelope = received[0]
        assert envelope.mail_from == "monitor@example.com"
        assert envelope.rcpt_tos == ["ops@example.com", "me@example.com"]
        text = envelope.content.decode()
        assert "Subject: [Stock Monitor] NVDA is above 50.00 (last 51.50)" in text
        assert "Rule: NVDA price rises above 50.00" in text and "Note: take profit?" in text
        assert "s3cret" not in text
        # a wrong password is a sentence that names the user, never the password
        bad = make_settings(
            stack,
            tmp_path,
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="starttls",
            smtp_username="alerts",
            smtp_password="wrong",
            smtp_cafile=str(cert),
            alert_email_to=("ops@example.com",),
        )
        with pytest.raises(DeliveryError) as info:
            send_test(bad, "email")
        assert "refused the login for 'alerts'" in str(info.value) and "wrong" not in str(info.value)
    finally:
        controller.stop()


def test_send_test_per_channel(stack, tmp_path):
    with Receiver() as hook, Mailbox() as mail:
        settings = make_settings(
            stack,
            tmp_path,
            alert_webhook_urls=(hook.url,),
            smtp_host="127.0.0.1",
            smtp_port=mail.port,
            smtp_security="none",
            alert_email_to=("ops@example.com",),
        )
        assert (
            send_test(settings, "webhook") == f"Test alert sent by webhook to {hook.url.split('/hook')[0]}."
        )
        assert hook.received[0]["body"]["test"] is True
        assert send_test(settings, "email") == "Test alert sent by email to ops@example.com."
        assert b"Test alert from Stock Monitor" in mail.messages[0].content
    nothing = make_settings(stack, tmp_path)
    with pytest.raises(
        DeliveryError, match="the webhook channel is not configured: set STOCKMON_ALERT_WEBHOOK_URLS"
    ):
        send_test(nothing, "webhook")
    with pytest.raises(DeliveryError, match="set STOCKMON_SMTP_HOST and STOCKMON_ALERT_EMAIL_TO"):
        send_test(nothing, "email")
    from pipeline.embedded.stack import free_port

    closed = make_settings(stack, tmp_path, alert_webhook_urls=(f"http://127.0.0.1:{free_port()}/x",))
    with pytest.raises(DeliveryError, match="is not reachable"):
        send_test(closed, "webhook")


def test_webhook_credentials_go_as_basic_auth_and_never_into_an_error_or_log(stack, tmp_path, caplog):
    """Issue 9: ``https://user:pass@host/...`` used to fail with a host lookup that contained the
    password; now the credentials are basic auth and never shown."""
    import base64
    import logging

    from pipeline.alerts.channels import short_url

    with Receiver(script=[500]) as hook:
        port = hook.url.split(":")[2].split("/")[0]
        url = f"http://al%40ice:pa%3Ass-w0rd@127.0.0.1:{port}/hook/secret-token"
        settings = make_settings(stack, tmp_path, alert_webhook_urls=(url,))
        caplog.set_level(logging.DEBUG)
        with pytest.raises(DeliveryError) as info:  # the receiver answers 500 first
            send_test(settings, "webhook")
        assert str(info.value) == f"webhook http://127.0.0.1:{port} answered HTTP 500 Internal Server Error"
        sent = send_test(settings, "webhook")
        assert sent == f"Test alert sent by webhook to http://127.0.0.1:{port}."
        got = hook.received[0]
        assert got["authorization"] == "Basic " + base64.b64encode(b"al@ice:pa:ss-w0rd").decode()
        assert got["path"] == "/hook/secret-token" and got["body"]["test"] is True
        assert short_url(url) == f"http://127.0.0.1:{port}"
    # unreachable (closed port) and unresolvable hosts: the error names the host, never the password
    from pipeline.embedded.stack import free_port

    for bad in (
        f"http://alice:pa%3Ass-w0rd@127.0.0.1:{free_port()}/x",
        "http://alice:pa%3Ass-w0rd@no-such-host.invalid/x",
    ):
        with pytest.raises(DeliveryError) as info:
            send_test(make_settings(stack, tmp_path, alert_webhook_urls=(bad,)), "webhook")
        assert "is not reachable" in str(info.value), str(info.value)
        assert "w0rd" not in str(info.value) and "alice" not in str(info.value)
    assert "w0rd" not in caplog.text and "alice" not in caplog.text


def test_send_test_without_tls_never_blames_starttls(stack, tmp_path):
    """Issue 9: with STOCKMON_SMTP_SECURITY=none a server without AUTH used to be reported as not
    offering STARTTLS; the sentence now names the login step."""
    with Mailbox() as mail:
        plain = make_settings(
            stack,
            tmp_path,
            smtp_host="127.0.0.1",
            smtp_port=mail.port,
            smtp_security="none",
            alert_email_to=("ops@example.com",),
        )
        assert send_test(plain, "email") == "Test alert sent by email to ops@example.com."
        with_login = make_settings(
            stack,
            tmp_path,
            smtp_host="127.0.0.1",
            smtp_port=mail.port,
            smtp_security="none",
            smtp_username="alerts",
            smtp_password="s3cret",
            alert_email_to=("ops@example.com",),
        )
        with pytest.raises(DeliveryError) as info:
            send_test(with_login, "email")
        text = str(info.value)
        assert "STARTTLS" not in text and "s3cret" not in text
        assert text.startswith(f"SMTP server 127.0.0.1:{mail.port} offers no login (AUTH)")
        assert "STOCKMON_SMTP_SECURITY=none" in text
