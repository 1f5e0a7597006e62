"""A client that sends no ICE consent checks once its pair is nominated, as libnice
does unless told to (GStreamer's webrtcbin, many embedded stacks), keeps its session
while its media flows; once its media stops too, the server removes it.

aiortc stands in for such a client: its consent checks (aioice's `query_consent`)
are switched off, so after the connectivity checks it sends media and RTCP only.
Before the fix the server removed the publisher 15 s after its last check.
"""

import asyncio
import time

import aioice.ice
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from common import Server, participants, post_offer, count_frames

# Four times the 15 s after which a pair without checks times out.
KEPT_FOR = 60.0


async def no_consent_checks(self):
    """aioice's consent loop, as libnice runs it by default: nothing."""
    await asyncio.Event().wait()


@pytest.fixture
def server():
    s = Server()
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_a_client_without_consent_checks_stays_while_its_media_flows(server, monkeypatch):
    monkeypatch.setattr(aioice.ice.Connection, "query_consent", no_consent_checks)

    async def run():
        pub = RTCPeerConnection()
        pub.addTrack(AudioStreamTrack())
        pub.addTrack(VideoStreamTrack())
        status, _, answer = await post_offer(server.url, "/whip/quiet", pub)
        assert status == 201, answer
        await pub.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        start = time.time()
        while time.time() - start < KEPT_FOR:
            await asyncio.sleep(1)
            assert pub.connectionState != "failed", "the publisher's connection failed"
            names = [p["name"] for p in await asyncio.to_thread(participants, server.url, "quiet")]
            assert names, (
                f"the publisher was removed {time.time() - start:.0f} s in while its media flowed\n"
                + server.log_tail()
            )
        # Still forwarded: a player (with its consent checks off too) decodes video.
        player = RTCPeerConnection()
        player.addTransceiver("video", direction="recvonly")
        player.addTransceiver("audio", direction="recvonly")
        got = asyncio.get_running_loop().create_future()
        player.on("track", lambda t: t.kind == "video" and not got.done() and got.set_result(t))
        status, _, answer = await post_offer(server.url, "/whep/quiet", player)
        assert status == 201, answer
        await player.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        track = await asyncio.wait_for(got, 10)
        assert await count_frames(track, 3) > 10, "the player decodes the quiet publisher"
        # The client leaves: its session ends.
        await pub.close()
        await player.close()
        gone = time.time()
        while await asyncio.to_thread(participants, server.url, "quiet"):
            assert time.time() - gone < 25, "a client that left stays"
            await asyncio.sleep(1)

    asyncio.run(run())
