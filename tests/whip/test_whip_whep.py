"""WHIP and WHEP with an independent WebRTC stack (aiortc): one aiortc peer publishes
into a room with WHIP, two aiortc players receive it with WHEP and decode frames, and
DELETE ends each session and frees it on the server; the same with two media workers
and viewers spread over them, where one player is served by the worker that does not
hold the room. Also the HTTP details: status
codes, Location, content types, CORS, bearer tokens and PATCH.

The server is started as common.py says (LANRELAY_BIN, 127.0.0.1, ephemeral ports).
"""

import asyncio
import json
import re

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from common import count_frames, participants, post_offer, request, run_server


@pytest.fixture(scope="module")
def server():
    yield from run_server()


@pytest.fixture(scope="module")
def spread_server():
    """Two media workers, a room's viewers spread over them from the first on."""
    yield from run_server("--workers", "2", "--spread-viewers-after", "0")


def test_whip_publish_and_two_whep_players(server):
    publish_and_play(server)


def test_whep_players_spread_over_workers(spread_server):
    """The second WHEP player is served by the worker that does not hold the room:
    it is admitted by the room's worker, answered, and decodes frames like the first."""
    health = publish_and_play(spread_server, check_spread=True)
    print(f"workers (participants, forwarded packets): {[(w['participants'], w['forwardedPackets']) for w in health['workers']]}")


def publish_and_play(server, check_spread=False):
    """One WHIP publisher, two WHEP players that decode its video, then DELETE of each;
    returns /healthz while all three were connected."""
    result = {}

    async def run():
        log = []
        pub = RTCPeerConnection()
        pub.addTrack(VideoStreamTrack())
        pub.addTrack(AudioStreamTrack())
        status, h, answer = await post_offer(server, "/whip/stage", pub)
        log.append(f"WHIP POST /whip/stage -> {status}, Location: {h.get('location')}, Content-Type: {h.get('content-type')}, ETag: {h.get('etag')}")
        assert status == 201, answer
        assert h["content-type"].startswith("application/sdp")
        assert re.fullmatch(r"/whip/stage/[A-Za-z0-9]+", h["location"])
        assert h.get("access-control-allow-origin") == "*"
        assert "Location" in h.get("access-control-expose-headers", "")
        await pub.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        whip_url = server + h["location"]

        players = []
        for i in range(2):
            pc = RTCPeerConnection()
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            got = {}
            pc.on("track", lambda track, got=got: got.setdefault(track.kind, track))
            status, h, answer = await post_offer(server, "/whep/stage", pc)
            log.append(f"WHEP POST /whep/stage -> {status}, Location: {h.get('location')}")
            assert status == 201, answer
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            players.append((pc, got, server + h["location"]))

        for i, (pc, got, _) in enumerate(players):
            for _ in range(100):
                if "video" in got:
                    break
                await asyncio.sleep(0.1)
            assert "video" in got, f"player {i} got no video track"
            frames = await count_frames(got["video"], 4)
            log.append(f"player {i}: {frames} video frames decoded in 4 s")
            assert frames >= 20, f"player {i} decoded {frames} frames"
            assert "audio" in got

        parts = participants(server, "stage")
        assert len(parts) == 3, parts
        status, _, body = request("GET", f"{server}/healthz")
        health = json.loads(body)
        result["health"] = health
        if check_spread:
            split = sorted(w["participants"] for w in health["workers"])
            assert split == [1, 2], f"publisher and a player on one worker, a player on the other: {health['workers']}"
            assert all(w["forwardedPackets"] > 0 for w in health["workers"]), health["workers"]
            assert health["rooms"] == 1, health
        players_seen = [p for p in parts if p["role"] == "viewer"]
        assert len(players_seen) == 2 and all(p["downTracks"] == 2 for p in players_seen), players_seen
        publisher = [p for p in parts if p["name"] == "WHIP publisher"][0]
        assert publisher["upTracks"] == 2 and publisher["relayConnected"], publisher

        # PATCH (trickle ICE, ICE restarts) on a live session is refused clearly.
        frag = {"Content-Type": "application/trickle-ice-sdpfrag"}
        status, h, _ = await asyncio.to_thread(request, "PATCH", whip_url, b"a=ice-ufrag:x", frag)
        assert status == 405 and "DELETE" in h["allow"], status

        # DELETE ends each session and the server frees it.
        status, _, _ = await asyncio.to_thread(request, "DELETE", players[0][2])
        log.append(f"WHEP DELETE -> {status}")
        assert status == 200
        assert len(participants(server, "stage")) == 2
        status, _, _ = await asyncio.to_thread(request, "DELETE", players[0][2])
        assert status == 404, "a deleted session is gone"
        status, _, _ = await asyncio.to_thread(request, "DELETE", whip_url)
        log.append(f"WHIP DELETE -> {status}")
        assert status == 200
        status, _, _ = await asyncio.to_thread(request, "DELETE", players[1][2])
        assert status == 200
        assert participants(server, "stage") == []
        for pc, _, _ in players:
            await pc.close()
        await pub.close()
        print("\n".join(log))

    asyncio.run(run())
    return result["health"]


def test_http_details(server):
    sdp_headers = {"Content-Type": "application/sdp"}
    # Wrong content type, bad SDP.
    status, _, _ = request("POST", f"{server}/whip/x", b"v=0", {"Content-Type": "text/plain"})
    assert status == 415
    status, _, body = request("POST", f"{server}/whip/x", b"not sdp", sdp_headers)
    assert status == 400 and "SDP" in body
    # CORS preflight.
    status, h, _ = request("OPTIONS", f"{server}/whep/x", None, {"Origin": "https://player.example", "Access-Control-Request-Method": "POST"})
    assert status == 204
    assert h["access-control-allow-origin"] == "*"
    assert "POST" in h["access-control-allow-methods"]
    assert "Authorization" in h["access-control-allow-headers"]
    # Unknown sessions (ended, or from before a restart) are 404 to PATCH and DELETE,
    # saying where to POST instead.
    status, _, body = request("PATCH", f"{server}/whip/x/nosuch", b"a=ice-ufrag:x", {"Content-Type": "application/trickle-ice-sdpfrag"})
    assert status == 404 and "POST a new offer to /whip/x" in body, (status, body)
    status, _, body = request("DELETE", f"{server}/whep/x/nosuch")
    assert status == 404 and "POST a new offer to /whep/x" in body, (status, body)


def test_bearer_token(server):
    async def run():
        for token, expected in [(None, 401), ("wrong", 401), ("s3cret", 201)]:
            pc = RTCPeerConnection()
            pc.addTransceiver("video", direction="recvonly")
            status, h, _ = await post_offer(server, "/whep/locked", pc, token)
            assert status == expected, (token, status)
            if status == 401:
                assert h.get("www-authenticate") == "Bearer"
            else:
                await asyncio.to_thread(request, "DELETE", server + h["location"])
            await pc.close()

    asyncio.run(run())
