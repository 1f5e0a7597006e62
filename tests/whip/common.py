"""Shared code of the WHIP/WHEP tests: the lanrelay server as a process (started,
killed and started again in its place), HTTP requests to it, and aiortc helpers.

The server binary is LANRELAY_BIN (default target/release/lanrelay), started on
127.0.0.1 with ephemeral ports; aiortc is told to gather only 127.0.0.1.
"""

import asyncio
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import aioice.ice

# Loopback only: aiortc skips 127.0.0.1 by default.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("LANRELAY_BIN", str(ROOT / "target" / "release" / "lanrelay"))
CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE


class Server:
    """A lanrelay process on 127.0.0.1 with its own certificate directory. The first
    `start` takes ephemeral ports; after `kill` (SIGKILL, as a crash), `start` again
    listens on the same ports with the same certificates, as systemd's restart would."""

    def __init__(self, *extra):
        self.extra = list(extra)
        self.certs = tempfile.mkdtemp(prefix="lanrelay-whip-")
        self.log_path = os.path.join(self.certs, "server.log")
        self.proc = None
        self.url = None
        # --listen, --media-listen and --http-listen of the first start, for restarts.
        self.places = ["--listen", "127.0.0.1:0"]

    def start(self):
        """Starts the server and waits for its banner; returns its HTTPS base URL."""
        self.proc = subprocess.Popen(
            [BIN, *self.places, "--certs", self.certs, *self.extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "lanrelay=info")},
        )
        out = ""
        deadline = time.time() + 20
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            out += line
            if "media on UDP" in line or not line:
                break
        https = re.search(r"HTTPS on TCP (127\.0\.0\.1:\d+)", out)
        media = re.search(r"media on UDP (127\.0\.0\.1:\d+)", out)
        helper = re.search(r"HTTP helper on TCP (127\.0\.0\.1:\d+)", out)
        assert https and media, out
        self.places = [
            "--listen", https.group(1),
            "--media-listen", media.group(1),
            "--http-listen", helper.group(1) if helper else "off",
        ]
        # Keep draining the server's output (into a file for failure reports).
        logfile = open(self.log_path, "a")
        logfile.write(out)
        logfile.flush()
        proc = self.proc

        def drain():
            # One line at a time, flushed, so that log_tail sees what was just logged.
            for line in proc.stdout:
                logfile.write(line)
                logfile.flush()

        threading.Thread(target=drain, daemon=True).start()
        self.url = f"https://{https.group(1)}"
        return self.url

    def kill(self):
        """SIGKILL, and wait until the process is gone."""
        self.proc.kill()
        self.proc.wait(5)

    def log_tail(self, n=6000):
        try:
            return open(self.log_path).read()[-n:]
        except OSError:
            return ""

    def stop(self):
        if os.environ.get("LANRELAY_LOG"):
            print(self.log_tail())
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        shutil.rmtree(self.certs, ignore_errors=True)


def run_server(*extra):
    """Starts lanrelay with `extra` flags; yields its HTTPS base URL, then stops it."""
    server = Server("--room-token", "locked=s3cret", *extra)
    try:
        yield server.start()
    finally:
        server.stop()


def request(method, url, body=None, headers=None, timeout=10):
    """An HTTP request; returns (status, headers, body text)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, context=CTX, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()


def leaf_fingerprint(url):
    """The SHA-256 fingerprint of the certificate the server at `url` presents."""
    host, port = re.match(r"https://([^:/]+):(\d+)", url).groups()
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with CTX.wrap_socket(raw, server_hostname=host) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def participants(server, room):
    status, _, body = request("GET", f"{server}/api/rooms/{room}")
    if status == 404:
        return []
    room = json.loads(body)
    return room["participants"] + room["viewers"]


async def post_offer(server, path, pc, token=None):
    offer = await pc.createOffer()
    await pc.setLocalDescription(offer)  # aiortc gathers its candidates here
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status, h, body = await asyncio.to_thread(
        request, "POST", f"{server}{path}", pc.localDescription.sdp.encode(), headers
    )
    return status, h, body


async def count_frames(track, seconds):
    """Decoded frames received on `track` within `seconds`."""
    frames = 0
    end = time.time() + seconds
    while time.time() < end:
        try:
            await asyncio.wait_for(track.recv(), timeout=max(0.1, end - time.time()))
            frames += 1
        except (asyncio.TimeoutError, Exception):
            break
    return frames
