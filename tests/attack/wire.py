"""What an attacker on the LAN sends, built by hand from the standard library: STUN
binding requests (RFC 8489/8445, with MESSAGE-INTEGRITY and FINGERPRINT), UDP
datagrams with a forged source address (a raw IPv4 socket), a WHIP offer, HTTPS
requests and a WebSocket client that can stop reading.

Nothing here knows lanrelay's code: it speaks the protocols, as any client would.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import socket
import ssl
import struct
import zlib

MAGIC = 0x2112A442


def _attr(kind, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * pad


def stun_request(username, password, tie_breaker=None):
    """A binding request as a controlling ICE agent nominating the pair: USERNAME,
    PRIORITY, ICE-CONTROLLING, USE-CANDIDATE, MESSAGE-INTEGRITY (keyed with the
    receiver's password; any bytes when `password` is None), FINGERPRINT."""
    txid = os.urandom(12)
    attrs = _attr(0x0006, username.encode())
    attrs += _attr(0x0024, struct.pack("!I", 1853824767))
    attrs += _attr(0x802A, struct.pack("!Q", tie_breaker or random.getrandbits(64)))
    attrs += _attr(0x0025, b"")
    # MESSAGE-INTEGRITY covers the message up to it, with the length counting it.
    head = struct.pack("!HHI", 0x0001, len(attrs) + 24, MAGIC) + txid
    if password is None:
        mac = os.urandom(20)
    else:
        mac = hmac.new(password.encode(), head + attrs, hashlib.sha1).digest()
    attrs += _attr(0x0008, mac)
    head = struct.pack("!HHI", 0x0001, len(attrs) + 8, MAGIC) + txid
    crc = (zlib.crc32(head + attrs) ^ 0x5354554E) & 0xFFFFFFFF
    attrs += _attr(0x8028, struct.pack("!I", crc))
    return struct.pack("!HHI", 0x0001, len(attrs), MAGIC) + txid + attrs


class Spoofer:
    """Sends UDP datagrams from any source address (needs root: a raw socket that
    writes the IP header itself; the kernel fills in its checksum and length)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        self.ident = random.randrange(65536)

    def send(self, src, dst, payload):
        (sip, sport), (dip, dport) = src, dst
        udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        self.ident = (self.ident + 1) & 0xFFFF
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45, 0, 20 + len(udp), self.ident, 0, 64, socket.IPPROTO_UDP, 0,
            socket.inet_aton(sip), socket.inet_aton(dip),
        )
        try:
            self.sock.sendto(ip + udp, (dip, 0))
        except OSError:
            # A full socket buffer (ENOBUFS): the flood goes on.
            pass


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def https(host, port, method, path, body=None, headers=None, timeout=5):
    """(status, headers dict with lower-case names, body text)."""
    conn = http.client.HTTPSConnection(host, port, context=tls_context(), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read().decode("utf-8", "replace")
    finally:
        conn.close()


def whip_offer(ufrag, pwd):
    """A WHIP publisher's offer: one Opus audio track, no trickle."""
    fingerprint = ":".join(f"{b:02X}" for b in os.urandom(32))
    lines = [
        "v=0",
        f"o=- {random.getrandbits(62)} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic: WMS",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        f"a=ice-ufrag:{ufrag}",
        f"a=ice-pwd:{pwd}",
        "a=ice-options:trickle",
        f"a=fingerprint:sha-256 {fingerprint}",
        "a=setup:actpass",
        "a=mid:0",
        "a=sendonly",
        "a=msid:attacker audio",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        f"a=ssrc:{random.getrandbits(31)} cname:attacker",
    ]
    return "\r\n".join(lines) + "\r\n"


class WhipSession:
    """A WHIP session of the attacker's own: its credentials and the server's."""

    def __init__(self, host, port, room):
        self.ufrag = base64.b32encode(os.urandom(5)).decode().lower()
        self.pwd = base64.b32encode(os.urandom(15)).decode().lower()
        status, headers, answer = https(
            host, port, "POST", f"/whip/{room}", whip_offer(self.ufrag, self.pwd),
            {"Content-Type": "application/sdp"},
        )
        if status != 201:
            raise RuntimeError(f"WHIP POST answered {status}: {answer.strip()}")
        self.location = headers.get("location")
        self.server_ufrag = _sdp_value(answer, "ice-ufrag")
        self.server_pwd = _sdp_value(answer, "ice-pwd")

    def binding_request(self):
        return stun_request(f"{self.server_ufrag}:{self.ufrag}", self.server_pwd)


def _sdp_value(sdp, name):
    for line in sdp.splitlines():
        if line.startswith(f"a={name}:"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError(f"no a={name} in the answer")


def _mask(data, mask):
    n = len(data)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class WebSocket:
    """A client of wss://HOST:PORT/ws. `recv_buffer`: the socket's receive buffer, small
    for a client meant to stop reading (the server's writes back up sooner)."""

    def __init__(self, host, port, recv_buffer=None, timeout=5):
        raw = socket.create_connection((host, port), timeout=timeout)
        if recv_buffer:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
        self.sock = tls_context().wrap_socket(raw, server_hostname=host)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise RuntimeError("the server closed the WebSocket handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"WebSocket refused: {head.decode(errors='replace')}")
        self.timeout = timeout
        self.buf = b""
        self.pending = []

    def send(self, msg):
        self.send_raw(json.dumps(msg))

    def send_raw(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        self.sock.sendall(head + mask + _mask(data, mask))

    def _frame(self):
        """The next whole frame in the buffer as (opcode, payload), or None."""
        buf = self.buf
        if len(buf) < 2:
            return None
        n, at = buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, at = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, at = struct.unpack("!Q", buf[2:10])[0], 10
        if len(buf) < at + n:
            return None
        self.buf = buf[at + n:]
        return buf[0] & 0x0F, buf[at:at + n]

    def _take(self):
        """Handles the buffered frames: (text messages as JSON, whether it closed)."""
        out = []
        while (f := self._frame()) is not None:
            op, payload = f
            if op == 0x8:
                return out, True
            if op == 0x9:
                mask = os.urandom(4)
                pong = struct.pack("!BB", 0x8A, 0x80 | len(payload)) + mask
                self.sock.sendall(pong + _mask(payload, mask))
            elif op == 0x1:
                out.append(json.loads(payload))
        return out, False

    def recv(self):
        """The next text message as JSON, waiting for it (answers pings; None when the
        server closes)."""
        while True:
            if self.pending:
                return self.pending.pop(0)
            msgs, closed = self._take()
            self.pending += msgs
            if self.pending:
                continue
            if closed:
                return None
            try:
                data = self.sock.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            self.buf += data

    def drain(self):
        """What has arrived, without waiting: (messages, whether the server closed)."""
        closed = False
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    closed = True
                    break
                self.buf += data
        except (ssl.SSLWantReadError, BlockingIOError):
            pass
        except OSError:
            closed = True
        finally:
            self.sock.settimeout(self.timeout)
        msgs, bye = self._take()
        msgs, self.pending = self.pending + msgs, []
        return msgs, closed or bye

    def recv_until(self, kind):
        while True:
            msg = self.recv()
            if msg is None or msg.get("type") == kind:
                return msg

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
