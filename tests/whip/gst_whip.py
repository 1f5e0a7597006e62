#!/usr/bin/python3
"""A manual check with a second real WebRTC stack: GStreamer's webrtcbin (libnice, and
OpenSSL with an RSA 2048 DTLS certificate) as a WHIP publisher or a WHEP player.
Not part of tests/run.sh; test_rsa_dtls.py covers the same with aiortc.

    /usr/bin/python3 tests/whip/gst_whip.py publish https://HOST:8443/whip/ROOM [SECONDS]
    /usr/bin/python3 tests/whip/gst_whip.py play    https://HOST:8443/whip/ROOM [SECONDS]

Needs Debian's gstreamer1.0-plugins-{base,good,bad}, gstreamer1.0-nice, python3-gi,
gir1.2-gst-plugins-bad-1.0 and gir1.2-nice-0.1 (Debian's python3: a pyenv python has
no `gi`). The server's HTTPS certificate is not checked (lanrelay's own CA signs it).
Without trickle ICE: the offer is POSTed once gathering is complete. Publishes a VP8
test pattern, or decodes the room's VP8 video; prints the connection states and the
frames decoded, and exits 0 if connected (and, as a player, decoding).
"""

import ssl
import sys
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

VP8 = "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000"


def main():
    mode, url = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10
    if mode == "play":
        url = url.replace("/whip/", "/whep/")
    Gst.init(None)
    if mode == "publish":
        pipe = Gst.parse_launch(
            "webrtcbin name=w bundle-policy=max-bundle "
            "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=15/1 ! "
            f"videoconvert ! vp8enc deadline=1 ! rtpvp8pay pt=96 ! {VP8} ! w."
        )
    else:
        # (parse_launch of a lone element returns the element, not a pipeline)
        pipe = Gst.Pipeline.new()
        w = Gst.ElementFactory.make("webrtcbin", "w")
        w.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        pipe.add(w)
    webrtc = pipe.get_by_name("w")
    frames = [0]
    loop = GLib.MainLoop()

    if mode == "play":
        webrtc.emit(
            "add-transceiver",
            GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
            Gst.Caps.from_string(VP8),
        )

        def on_pad(_, pad):
            if pad.get_direction() != Gst.PadDirection.SRC:
                return
            sink = Gst.parse_bin_from_description(
                "rtpvp8depay ! vp8dec ! fakesink name=f signal-handoffs=true", True
            )
            pipe.add(sink)
            sink.sync_state_with_parent()
            sink.get_by_name("f").connect("handoff", lambda *a: frames.__setitem__(0, frames[0] + 1))
            pad.link(sink.get_static_pad("sink"))

        webrtc.connect("pad-added", on_pad)

    def post(offer_sdp):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        req = urllib.request.Request(
            url, data=offer_sdp.encode(), method="POST", headers={"Content-Type": "application/sdp"}
        )
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            print(f"POST {url} -> {r.status} {r.headers.get('Location')}")
            return r.read().decode()

    def on_gathered(*_):
        if webrtc.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            return
        offer = webrtc.get_property("local-description").sdp.as_text()
        fp = [line for line in offer.splitlines() if line.startswith("a=fingerprint")][:1]
        print(f"offer's DTLS certificate: {fp}")
        answer = post(offer)
        _, sdp = GstSdp.SDPMessage.new_from_text(answer)
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        webrtc.emit("set-remote-description", desc, None)

    def on_offer(promise, _):
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply and reply.has_field("offer") else None
        if offer is None:
            print(f"create-offer failed: {reply.to_string() if reply else None}")
            return
        webrtc.emit("set-local-description", offer, None)

    def on_negotiation_needed(*_):
        webrtc.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer, None))

    webrtc.connect("notify::ice-gathering-state", on_gathered)
    webrtc.connect("on-negotiation-needed", on_negotiation_needed)
    webrtc.connect(
        "notify::connection-state",
        lambda *_: print(f"connection state: {webrtc.get_property('connection-state').value_nick}"),
    )
    pipe.set_state(Gst.State.PLAYING)
    if mode == "play":
        # A receive-only webrtcbin has nothing to negotiate until asked.
        GLib.idle_add(lambda: on_negotiation_needed() or False)
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    loop.run()
    state = webrtc.get_property("connection-state")
    decoded = f", {frames[0]} video frames decoded" if mode == "play" else ""
    print(f"after {seconds:.0f} s: {state.value_nick}{decoded}")
    pipe.set_state(Gst.State.NULL)
    ok = state == GstWebRTC.WebRTCPeerConnectionState.CONNECTED and (mode == "publish" or frames[0] > 0)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
