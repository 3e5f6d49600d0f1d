#!/usr/bin/env python3
"""A real SMTP server for webir-audit's mail tests (aiosmtpd).

STARTTLS is required (or implicit TLS with --implicit-tls), and AUTH with
--user/--password is required before MAIL. Every message the server accepts
is written to --maildir as <n>.eml (the bytes received) and <n>.json (the
envelope), so a test counts what really arrived.

--faults is a comma-separated script, one action per DATA command in order
(after the script runs out, every message is accepted):
  ok    accept
  421   reply 421 (transient) and keep nothing
  450   reply 450 (transient) and keep nothing
  550   reply 550 (permanent) and keep nothing
  cut   keep the message, then drop the connection without replying
  slow  keep the message, write <n>.slow, wait 60 s before replying

Prints "READY <port>" on stdout once it listens; runs until killed.
"""

import argparse
import asyncio
import json
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    def __init__(self, maildir, faults):
        self.maildir = maildir
        self.faults = [f for f in faults.split(",") if f]
        self.lock = threading.Lock()
        # A restarted server goes on numbering after what it kept before.
        self.count = len([f for f in os.listdir(maildir) if f.endswith(".json")])

    def keep(self, envelope):
        with self.lock:
            self.count += 1
            n = self.count
        base = os.path.join(self.maildir, f"{n:04}")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(base + ".eml.tmp", base + ".eml")
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".json.tmp", base + ".json")
        return base

    async def handle_DATA(self, server, session, envelope):
        action = self.faults.pop(0) if self.faults else "ok"
        if action in ("421", "450"):
            return f"{action} 4.3.0 try again later"
        if action == "550":
            return "550 5.1.1 mailbox unavailable"
        base = self.keep(envelope)
        if action == "cut":
            server.transport.close()
            return "250 2.0.0 (never reaches the client)"
        if action == "slow":
            open(base + ".slow", "w").close()
            await asyncio.sleep(60)
        return "250 2.0.0 queued"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--faults", default="")
    ap.add_argument("--implicit-tls", action="store_true")
    a = ap.parse_args()

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(a.cert, a.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == a.user.encode()
            and auth_data.password == a.password.encode()
        )
        # handled=False: aiosmtpd itself replies 535 to a failure.
        return AuthResult(success=ok, handled=False)

    os.makedirs(a.maildir, exist_ok=True)
    handler = Handler(a.maildir, a.faults)
    kwargs = dict(
        hostname="127.0.0.1",
        port=a.port,
        authenticator=authenticator,
        auth_required=True,
    )
    if a.implicit_tls:
        # aiosmtpd counts only STARTTLS as TLS when offering AUTH; here the
        # whole connection is TLS, so AUTH needs no further condition.
        controller = Controller(
            handler, ssl_context=context, auth_require_tls=False, **kwargs
        )
    else:
        controller = Controller(
            handler,
            tls_context=context,
            require_starttls=True,
            auth_require_tls=True,
            **kwargs,
        )
    controller.start()
    print(f"READY {a.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    sys.exit(main())
