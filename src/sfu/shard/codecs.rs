//! Codecs across a room: a receiver that cannot decode what a publisher sends (say
//! Firefox without OpenH264, and a publisher sending H.264) is told so instead of
//! getting a black tile, and a browser publisher is asked to send VP8, which every
//! browser can send and decode (the page moves its camera to a new m-line that
//! prefers it: str0m keeps an m-line's codecs as first negotiated; the old track
//! ends, see `shard::publish`). A publisher that cannot change (a WHIP encoder) is
//! named in the receiver's message and in `/api/rooms`.

use str0m::format::Codec;
use str0m::media::Mid;
use tracing::{info, warn};

use super::Shard;
use crate::sfu::peer::{codec_name, Client, Peer};
use crate::signaling::protocol::{PeerId, ServerMsg};

/// What every browser can send and decode.
const COMMON_VIDEO: Codec = Codec::Vp8;

impl Shard {
    /// Receiver `sub` cannot decode `codec`, which publisher `from` sends on `mid`.
    pub(super) fn codec_gap(&mut self, from: PeerId, mid: Mid, sub: PeerId, codec: Codec) {
        let (Some(publisher), Some(receiver)) = (self.peers.get(&from), self.peers.get(&sub))
        else {
            return;
        };
        let (who, whom) = (publisher.info.name.clone(), receiver.info.name.clone());
        // Only a browser on the WebSocket renegotiates; a stand-in's home does not
        // (yet) hear about a far viewer's codecs.
        let browser = publisher
            .here()
            .is_some_and(|l| l.client == Client::Browser);
        let switchable = browser && codec != COMMON_VIDEO;
        let name = codec_name(codec);
        let common = codec_name(COMMON_VIDEO);
        warn!(
            from,
            sub,
            codec = name,
            switchable,
            "receiver cannot decode"
        );
        if let Some(l) = self.peers.get_mut(&sub).and_then(Peer::here_mut) {
            if !l.undecodable_from.contains(&from) {
                l.undecodable_from.push(from);
            }
        }
        let message = if switchable {
            format!("{who}'s video is {name}, which this browser cannot decode: {who} was asked to send {common} instead")
        } else {
            format!("{who}'s video is {name}, which this browser cannot decode, and {who}'s sender cannot send another codec")
        };
        self.signal(
            sub,
            ServerMsg::PeerCodec {
                id: from,
                codec: name.to_string(),
                decodable: false,
                switchable,
                message,
            },
        );
        let ask = switchable
            && self
                .peers
                .get_mut(&from)
                .and_then(|p| p.up.get_mut(&mid))
                .is_some_and(|up| !std::mem::replace(&mut up.asked_codec, true));
        if ask {
            info!(
                from,
                codec = common,
                "asking the publisher to change its video codec"
            );
            let reason = format!("{whom}'s browser cannot decode {name}");
            self.signal(
                from,
                ServerMsg::SendCodec {
                    codec: common.to_string(),
                    reason,
                },
            );
        }
    }

    /// Receiver `sub` decodes publisher `from`'s video again, now in `codec`.
    pub(super) fn codec_mended(&mut self, from: PeerId, sub: PeerId, codec: Codec) {
        let who = self
            .peers
            .get(&from)
            .map(|p: &Peer| p.info.name.clone())
            .unwrap_or_default();
        let name = codec_name(codec);
        self.signal(
            sub,
            ServerMsg::PeerCodec {
                id: from,
                codec: name.to_string(),
                decodable: true,
                switchable: false,
                message: format!("{who}'s video is {name} now"),
            },
        );
    }
}
