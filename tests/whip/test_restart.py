"""The server is killed with SIGKILL under a live WHIP/WHEP stream and started again at
once on the same ports with the same certificate directory. The new process knows
none of the old sessions, so clients recover as OBS does: when the connection fails
or the session URL is gone (404), POST a new offer to the same endpoint. An aiortc
publisher and an aiortc player with that loop must stream again, the player decoding
frames within 10 s of the restart; the old session URLs answer 404 to PATCH and
DELETE, and the certificate is the same.
"""

import asyncio
import time

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from common import Server, leaf_fingerprint, post_offer, request

# The promise: a player decodes frames again this long after the restart.
BACK_WITHIN = 10.0
# How often a client checks its session (OBS watches its connection's state; a PATCH
# answered 404 tells the same thing sooner).
CHECK_EVERY = 0.5


class Client:
    """A WHIP publisher (`path` /whip/ROOM) or WHEP player (/whep/ROOM) that keeps its
    session: whenever its connection fails or its session URL answers 404, it closes
    the connection and POSTs a new offer, retrying until the server answers."""

    def __init__(self, server, path):
        self.server = server
        self.path = path
        self.pc = None
        self.location = None
        self.sessions = 0
        # The player's decoded video frames: (session number, time) of each.
        self.frames = []
        self.log = []
        self.task = None

    def start(self):
        self.task = asyncio.create_task(self.keep())

    async def stop(self):
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        if self.pc:
            await self.pc.close()

    def frames_in(self, session, since=0.0):
        return sum(1 for s, t in self.frames if s == session and t >= since)

    async def keep(self):
        while True:
            if self.location is None:
                await self.post()
                if self.location is None:
                    await asyncio.sleep(0.25)
                    continue
            await asyncio.sleep(CHECK_EVERY)
            reason = await self.trouble()
            if reason:
                self.log.append(f"{time.time():.3f} {self.path} session {self.sessions} lost: {reason}")
                old, self.pc, self.location = self.pc, None, None
                asyncio.create_task(old.close())

    async def trouble(self):
        """Why the session is over, or None while it lives."""
        if self.pc.connectionState in ("failed", "closed"):
            return f"connection {self.pc.connectionState}"
        try:
            status, _, body = await asyncio.to_thread(
                request, "PATCH", self.location, b"a=ice-ufrag:probe",
                {"Content-Type": "application/trickle-ice-sdpfrag"}, 2,
            )
        except OSError:
            return None  # the server is down: keep checking until it answers
        return f"{status} {body.strip()}" if status == 404 else None

    async def post(self):
        pc = RTCPeerConnection()
        if self.path.startswith("/whip/"):
            pc.addTrack(VideoStreamTrack())
            pc.addTrack(AudioStreamTrack())
        else:
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            session = self.sessions + 1

            @pc.on("track")
            def on_track(track):
                if track.kind == "video":
                    asyncio.create_task(self.consume(track, session))

        try:
            status, h, answer = await post_offer(self.server.url, self.path, pc)
        except OSError as e:
            self.log.append(f"{time.time():.3f} POST {self.path}: {e}")
            await pc.close()
            return
        self.log.append(f"{time.time():.3f} POST {self.path} -> {status} {h.get('location')}")
        if status != 201:
            await pc.close()
            return
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        self.sessions += 1
        self.pc = pc
        self.location = self.server.url + h["location"]

    async def consume(self, track, session):
        while True:
            try:
                await track.recv()
            except Exception:
                return
            self.frames.append((session, time.time()))


async def wait_until(cond, seconds, what):
    end = time.time() + seconds
    while time.time() < end:
        if cond():
            return time.time()
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


@pytest.fixture
def server():
    s = Server()
    s.start()
    yield s
    s.stop()


def test_whip_and_whep_clients_repost_after_kill_9(server):
    async def run():
        publisher = Client(server, "/whip/onair")
        player = Client(server, "/whep/onair")
        publisher.start()
        player.start()
        try:
            await wait_until(lambda: player.frames_in(1) >= 20, 15, "the player decoding the first session")
            fingerprint = leaf_fingerprint(server.url)
            old_whip, old_whep = publisher.location, player.location

            killed = time.time()
            server.kill()
            restarted = time.time()
            server.start()
            up = time.time()
            print(f"\nkilled in {restarted - killed:.3f} s; the new server was up {up - restarted:.3f} s after it was started")
            assert leaf_fingerprint(server.url) == fingerprint, "the same certificate after the restart"

            # Old session URLs: a clear 404 naming where to POST again.
            frag = {"Content-Type": "application/trickle-ice-sdpfrag"}
            for url, endpoint in [(old_whip, "/whip/onair"), (old_whep, "/whep/onair")]:
                for method in ("PATCH", "DELETE"):
                    status, _, body = await asyncio.to_thread(request, method, url, b"a=ice-ufrag:x" if method == "PATCH" else None, frag if method == "PATCH" else None)
                    assert status == 404 and f"POST a new offer to {endpoint}" in body, (method, url, status, body)

            # Both clients POST again by themselves; the player decodes frames anew.
            back = await wait_until(
                lambda: player.sessions >= 2 and player.frames_in(player.sessions, restarted) >= 10,
                BACK_WITHIN, "the player decoding frames after the restart",
            )
            print(f"player decoding again {back - restarted:.2f} s after the restart "
                  f"(publisher sessions {publisher.sessions}, player sessions {player.sessions})")
            assert publisher.sessions == 2 and player.sessions == 2, (publisher.log, player.log)
            assert back - restarted <= BACK_WITHIN
        except BaseException:
            print("\n".join(publisher.log + player.log))
            print(server.log_tail())
            raise
        finally:
            await publisher.stop()
            await player.stop()

    asyncio.run(run())
