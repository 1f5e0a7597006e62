"""A link with known conditions, in user space, for kernels without `tc netem`.

Copies Ethernet frames between two interfaces (both directions) through AF_PACKET
sockets, applying netem's model to each frame independently: a fixed delay plus a
uniformly distributed jitter (netem's default distribution without a table), and
independent random loss. Frames are reordered when their jitter says so, as netem's
do. Run it inside a network namespace whose two interfaces have no addresses (so the
kernel there neither answers nor forwards):

    python3 wire.py IFACE_A IFACE_B

and write netem-style conditions to its standard input, one line each, applied to
both directions from then on:

    delay 20ms 5ms loss 3%
    delay 5ms
    loss 100%

It prints "ready" once both sockets are open and "ok" after each line it accepts.
Python's standard library only; used by tests/e2e/lib.mjs (`emulatedClients`).
"""

import heapq
import os
from array import array
import random
import re
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def parse(line):
    """netem arguments -> (delay s, jitter s, loss fraction)."""
    delay, jitter, loss = 0.0, 0.0, 0.0
    m = re.search(r"delay\s+([\d.]+)ms(?:\s+([\d.]+)ms)?", line)
    if m:
        delay = float(m.group(1)) / 1000
        jitter = float(m.group(2) or 0) / 1000
    m = re.search(r"loss\s+([\d.]+)%", line)
    if m:
        loss = float(m.group(1)) / 100
    if not re.fullmatch(r"\s*((delay\s+[\d.]+ms(\s+[\d.]+ms)?|loss\s+[\d.]+%)\s*)*", line):
        raise ValueError(f"not understood: {line.strip()}")
    return delay, jitter, loss


def checksum(data):
    """The Internet checksum (RFC 1071), in the byte order of `data`."""
    if len(data) % 2:
        data += b"\0"
    s = sum(array("H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return array("H", [~s & 0xFFFF]).tobytes()


def fix_checksums(frame):
    """A veth hands packet sockets TCP and UDP packets whose checksum the sender left
    to the device (checksum offload); sent on as they are, the receiver would drop
    them. UDP over IPv4 gets no checksum (0, allowed); TCP gets a computed one."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return frame
    ihl = (frame[14] & 0x0F) * 4
    proto = frame[23]
    total = int.from_bytes(frame[16:18], "big")
    l4 = 14 + ihl
    end = 14 + total
    if int.from_bytes(frame[20:22], "big") & 0x1FFF or frame[20] & 0x20:
        return frame  # a fragment: leave it
    f = bytearray(frame)
    if proto == 17 and end >= l4 + 8:
        f[l4 + 6 : l4 + 8] = b"\0\0"
    elif proto == 6 and end >= l4 + 20:
        f[l4 + 16 : l4 + 18] = b"\0\0"
        pseudo = bytes(f[26:34]) + b"\0\x06" + (end - l4).to_bytes(2, "big")
        f[l4 + 16 : l4 + 18] = checksum(pseudo + bytes(f[l4:end]))
    return bytes(f)


def open_socket(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    s.setblocking(False)
    return s


def main():
    a_name, b_name = sys.argv[1], sys.argv[2]
    a, b = open_socket(a_name), open_socket(b_name)
    other = {a.fileno(): b, b.fileno(): a}
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    delay, jitter, loss = 0.0, 0.0, 0.0
    queue = []  # (due, seq, socket, frame)
    seq = 0
    pending = b""
    print("ready", flush=True)
    while True:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            try:
                out.send(frame)
            except OSError as e:
                print(f"dropped a frame of {len(frame)} bytes: {e}", file=sys.stderr, flush=True)
        timeout = max(0.0, queue[0][0] - now) if queue else 0.5
        readable, _, _ = select.select([a, b, stdin], [], [], timeout)
        for r in readable:
            if r == stdin:
                data = os.read(stdin, 4096)
                if not data:
                    return
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    try:
                        delay, jitter, loss = parse(line.decode())
                        print("ok", flush=True)
                    except ValueError as e:
                        print(f"error {e}", flush=True)
                continue
            while True:
                try:
                    frame, addr = r.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue  # our own copy of a frame we sent
                if loss and random.random() < loss:
                    continue
                d = delay + (random.uniform(-jitter, jitter) if jitter else 0.0)
                seq += 1
                out = other[r.fileno()]
                heapq.heappush(queue, (time.monotonic() + max(0.0, d), seq, out, fix_checksums(frame)))


if __name__ == "__main__":
    main()
