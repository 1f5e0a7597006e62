"""WHIP and WHEP clients whose DTLS certificate is RSA, as GStreamer's webrtcbin uses
(OpenSSL with an RSA 2048 key): an aiortc publisher with an RSA certificate publishes,
and two players, one with aiortc's usual ECDSA certificate and one with an RSA
certificate, decode its video. A publisher whose a=fingerprint names another RSA
certificate than the one it presents is refused, as any other.

Before crates/dimpl's patch the server's CertificateRequest asked for ECDSA
certificates only: OpenSSL then sends no certificate and the server logged "no client
certificate received" after answering 201.

The server is started as common.py says (LANRELAY_BIN, 127.0.0.1, ephemeral ports).
"""

import asyncio
import re
import time

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VideoStreamTrack
from aiortc.rtcdtlstransport import RTCCertificate, generate_certificate
from cryptography.hazmat.primitives.asymmetric import rsa

from common import Server, count_frames, participants, post_offer, request

# How long a DTLS handshake on loopback may take before the test gives up on it.
CONNECT_WITHIN = 15.0


def rsa_certificate():
    """A self-signed certificate on a fresh RSA 2048 key, as webrtcbin makes one."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return RTCCertificate(key=key, cert=generate_certificate(key))


def peer(certificate=None):
    """An aiortc peer connection; with `certificate`, its DTLS uses that one instead of
    the ECDSA certificate aiortc generates (aiortc has no public option for it)."""
    pc = RTCPeerConnection()
    if certificate is not None:
        pc._RTCPeerConnection__certificates = [certificate]
    return pc


async def why(server, what):
    """`what`, and the end of the server's log a moment later (it logs the DTLS failure
    as it happens, while the client may already have given up)."""
    await asyncio.sleep(1)
    return f"{what}\n--- server log ---\n{server.log_tail()}"


def key_type(pc):
    """The key type of the certificate this peer presents in DTLS: RSA or ECDSA."""
    key = pc._RTCPeerConnection__certificates[0]._key
    return "RSA" if isinstance(key, rsa.RSAPrivateKey) else "ECDSA"


async def connected(pc, seconds):
    """Waits until `pc` is connected (ICE and DTLS); returns the time it took, or None
    if it failed or did not connect within `seconds`."""
    start = time.time()
    while time.time() - start < seconds:
        if pc.connectionState == "connected":
            return time.time() - start
        if pc.connectionState in ("failed", "closed"):
            return None
        await asyncio.sleep(0.02)
    return None


@pytest.fixture
def server():
    s = Server()
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_rsa_publisher_reaches_ecdsa_and_rsa_players(server):
    async def run():
        log = []
        pub = peer(rsa_certificate())
        pub.addTrack(VideoStreamTrack())
        status, h, answer = await post_offer(server.url, "/whip/rsa", pub)
        assert status == 201, answer
        await pub.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        took = await connected(pub, CONNECT_WITHIN)
        assert took is not None, await why(server, f"the RSA publisher did not connect (state {pub.connectionState})")
        log.append(f"WHIP publisher ({key_type(pub)}): connected {took * 1000:.0f} ms after the answer")

        players = []
        for certificate in (None, rsa_certificate()):
            pc = peer(certificate)
            pc.addTransceiver("video", direction="recvonly")
            got = {}
            pc.on("track", lambda track, got=got: got.setdefault(track.kind, track))
            status, h, answer = await post_offer(server.url, "/whep/rsa", pc)
            assert status == 201, answer
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            took = await connected(pc, CONNECT_WITHIN)
            assert took is not None, await why(
                server, f"the {key_type(pc)} player did not connect (state {pc.connectionState})"
            )
            log.append(f"WHEP player ({key_type(pc)}): connected {took * 1000:.0f} ms after the answer")
            players.append((pc, got, server.url + h["location"]))

        for pc, got, _ in players:
            for _ in range(100):
                if "video" in got:
                    break
                await asyncio.sleep(0.1)
            assert "video" in got, f"the {key_type(pc)} player got no video track"
            frames = await count_frames(got["video"], 3)
            log.append(f"WHEP player ({key_type(pc)}): {frames} video frames decoded in 3 s")
            assert frames >= 15, f"the {key_type(pc)} player decoded {frames} frames"

        parts = participants(server.url, "rsa")
        publisher = [p for p in parts if p["role"] != "viewer"]
        assert len(publisher) == 1 and publisher[0]["relayConnected"], parts
        for pc, _, url in players:
            await asyncio.to_thread(request, "DELETE", url)
            await pc.close()
        await pub.close()
        print("\n" + "\n".join(log))

    asyncio.run(run())


def test_rsa_publisher_with_another_certificates_fingerprint_is_refused(server):
    """The fingerprint check holds for RSA certificates: the offer's a=fingerprint
    lines name another RSA certificate than the one the publisher presents."""

    async def run():
        pub = peer(rsa_certificate())
        pub.addTrack(VideoStreamTrack())
        offer = await pub.createOffer()
        await pub.setLocalDescription(offer)
        other = rsa_certificate().getFingerprints()
        sdp = pub.localDescription.sdp
        for fp in other:
            sdp = re.sub(rf"a=fingerprint:{fp.algorithm} [0-9A-F:]+", f"a=fingerprint:{fp.algorithm} {fp.value}", sdp)
        assert sdp != pub.localDescription.sdp
        status, _, answer = await asyncio.to_thread(
            request, "POST", f"{server.url}/whip/forged", sdp.encode(), {"Content-Type": "application/sdp"}
        )
        assert status == 201, answer
        await pub.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

        # The server drops the session at the peer's certificate; the publisher is
        # never listed as connected.
        deadline = time.time() + 10
        while time.time() < deadline:
            if "remote fingerprint no match" in server.log_tail(200000):
                break
            await asyncio.sleep(0.1)
        log = server.log_tail(200000)
        assert "remote fingerprint no match" in log, log[-3000:]
        assert not any(p["relayConnected"] for p in participants(server.url, "forged"))
        await pub.close()

    asyncio.run(run())
