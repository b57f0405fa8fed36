#!/usr/bin/python3
"""A real SMTP server for vigil's tests (Debian's python3-aiosmtpd), and a parser that
reads what arrived with Python's own email package: two independent implementations check
what lettre wrote.

    sink.py serve PORT DIR [DELAY]
                             listen on 127.0.0.1:PORT; each message's raw bytes become
                             DIR/NNNN.eml (written to a temp name, then renamed); prints
                             "ready" once listening; stops on SIGTERM or when stdin closes.
                             With DELAY (seconds), each 250 comes that long after the
                             message was stored: a slow server, accepted but not yet said
    sink.py parse FILE       print the message as JSON: raw headers, decoded subject,
                             Message-ID, plain text and HTML parts, envelope recipients
"""

import email
import email.policy
import json
import os
import signal
import sys
import threading


def serve(port, directory, delay=0.0):
    import asyncio

    from aiosmtpd.controller import Controller

    counter = {"n": 0}
    lock = threading.Lock()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with lock:
                counter["n"] += 1
                n = counter["n"]
            tmp = os.path.join(directory, ".%04d.tmp" % n)
            final = os.path.join(directory, "%04d.eml" % n)
            with open(tmp, "wb") as f:
                f.write(envelope.original_content or envelope.content)
            with open(final + ".rcpt", "w") as f:
                json.dump(envelope.rcpt_tos, f)
            os.rename(tmp, final)
            if delay > 0:
                await asyncio.sleep(delay)
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    controller.stop()


def parse(path):
    with open(path, "rb") as f:
        raw = f.read()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("ascii", "replace")
    names = [line.split(":", 1)[0] for line in head.split("\n") if line and line[0] not in " \t"]

    def part(kind):
        p = msg.get_body(preferencelist=(kind,))
        return None if p is None else p.get_content()

    rcpt = []
    if os.path.exists(path + ".rcpt"):
        with open(path + ".rcpt") as f:
            rcpt = json.load(f)
    out = {
        "header_names": names,
        "raw_head": head,
        "subject": str(msg["subject"]) if msg["subject"] is not None else None,
        "message_id": str(msg["message-id"]) if msg["message-id"] is not None else None,
        "to": str(msg["to"]),
        "from": str(msg["from"]),
        "text": part("plain"),
        "html": part("html"),
        "defects": [str(d) for d in msg.defects],
        "rcpt_tos": rcpt,
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) in (4, 5) and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]) if len(sys.argv) == 5 else 0.0)
    elif len(sys.argv) == 3 and sys.argv[1] == "parse":
        parse(sys.argv[2])
    else:
        sys.exit(__doc__)
