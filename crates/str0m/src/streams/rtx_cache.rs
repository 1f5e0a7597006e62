use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use crate::io::DATAGRAM_MAX_PACKET_SIZE;
use crate::packet::Vp8Patch;
use crate::rtp_::{ExtensionValues, MediaTime, Pt, SeqNo, Ssrc};

use super::RtpPacket;
use super::rtx_cache_buf::EvictingBuffer;

const RTX_CACHE_SIZE_QUANTIZER: usize = 25;
const RTX_CACHE_QUANTIZE_SLOTS: usize = DATAGRAM_MAX_PACKET_SIZE / RTX_CACHE_SIZE_QUANTIZER;

#[derive(Debug)]
pub(crate) struct RtxCache {
    // Data, new additions here probably need to be cleared in [`clear`].
    packet_by_seq_no: EvictingBuffer<Cached>,

    // Technically we want [Option<SeqNo>; X] to indicate the absence of
    // a SeqNo. However We can half the storage space by using the sentinel
    // values SeqNo::MAX to indicate None
    seq_no_by_quantized_size: [SeqNo; RTX_CACHE_QUANTIZE_SLOTS],
}

/// lanrelay patch: a sent packet as the cache keeps it. A whole `RtpPacket` is 400+
/// bytes, most of them the CSRC list and the extension values, which forwarded media
/// seldom carries; a cache of 128 packets per stream and receiver then spans 55 KB
/// that every send writes a cold slot of. Kept here: what a resend needs, the rare
/// parts boxed only when set (about 100 bytes a slot). The MID and RID extension
/// values are not kept: a resend sets them from the stream (`build_packet`).
#[derive(Debug)]
pub(crate) struct Cached {
    seq_no: SeqNo,
    time: MediaTime,
    timestamp: Instant,
    payload: Arc<[u8]>,
    rare: Option<Box<Rare>>,
    rtp_time: u32,
    ssrc: Ssrc,
    sequence_number: u16,
    payload_type: Pt,
    marker: bool,
    has_padding: bool,
    has_extension: bool,
    vp8_patch: Option<Vp8Patch>,
}

/// lanrelay patch: the parts of a cached packet's header that are seldom set.
#[derive(Debug)]
struct Rare {
    csrc_count: usize,
    csrc: [u32; 15],
    ext_vals: ExtensionValues,
}

impl Cached {
    fn new(packet: RtpPacket) -> Self {
        let RtpPacket {
            seq_no,
            time,
            header,
            payload,
            vp8_patch,
            timestamp,
            ..
        } = packet;
        let mut ext_vals = header.ext_vals;
        ext_vals.mid = None;
        ext_vals.rid = None;
        let rare = (header.csrc_count > 0 || ext_vals != ExtensionValues::default()).then(|| {
            Box::new(Rare {
                csrc_count: header.csrc_count,
                csrc: header.csrc,
                ext_vals,
            })
        });
        Cached {
            seq_no,
            time,
            timestamp,
            payload,
            rare,
            rtp_time: header.timestamp,
            ssrc: header.ssrc,
            sequence_number: header.sequence_number,
            payload_type: header.payload_type,
            marker: header.marker,
            has_padding: header.has_padding,
            has_extension: header.has_extension,
            vp8_patch,
        }
    }

    pub(crate) fn payload_len(&self) -> usize {
        self.payload.len()
    }

    /// Writes the cached packet into `pkt` (a scratch packet), as it was cached.
    pub(crate) fn expand_into(&self, pkt: &mut RtpPacket) {
        pkt.seq_no = self.seq_no;
        pkt.time = self.time;
        pkt.timestamp = self.timestamp;
        pkt.payload = self.payload.clone();
        pkt.vp8_patch = self.vp8_patch.clone();
        pkt.last_sender_info = None;
        pkt.nackable = true;
        let h = &mut pkt.header;
        h.version = 2;
        h.has_padding = self.has_padding;
        h.has_extension = self.has_extension;
        h.marker = self.marker;
        h.payload_type = self.payload_type;
        h.sequence_number = self.sequence_number;
        h.timestamp = self.rtp_time;
        h.ssrc = self.ssrc;
        h.header_len = 0;
        match &self.rare {
            Some(r) => {
                h.csrc_count = r.csrc_count;
                h.csrc = r.csrc;
                h.ext_vals = r.ext_vals.clone();
            }
            None => {
                h.csrc_count = 0;
                h.csrc = [0; 15];
                h.ext_vals = ExtensionValues::default();
            }
        }
    }
}

impl RtxCache {
    pub fn new(max_packet_count: usize, max_packet_age: Duration) -> Self {
        Self {
            // lanrelay patch: one slot to start with, not ten (4.5 KB): every send
            // stream gets a cache, also those that never resend (audio) and the one
            // replaced when the cache is sized; the buffer grows as packets come.
            packet_by_seq_no: EvictingBuffer::new(1, max_packet_age, max_packet_count),
            seq_no_by_quantized_size: [SeqNo::MAX; RTX_CACHE_QUANTIZE_SLOTS],
        }
    }

    pub fn cache_sent_packet(&mut self, packet: RtpPacket, now: Instant) {
        assert!(packet.nackable);
        let seq_no = packet.seq_no;
        let quantized_size = packet.payload.len() / RTX_CACHE_SIZE_QUANTIZER;
        self.packet_by_seq_no
            .push(*seq_no, now, Cached::new(packet));
        self.seq_no_by_quantized_size[quantized_size] = seq_no;
        self.remove_old_packets(now);
    }

    /// lanrelay patch: see `EvictingBuffer::warm`; also the count of the payload the
    /// next entry replaces (dropping it writes there).
    pub(crate) fn warm(&self) -> u64 {
        self.packet_by_seq_no
            .warm(|c| Arc::strong_count(&c.payload) as u64)
    }

    pub fn last_cached_seq_no(&self) -> Option<SeqNo> {
        Some(self.packet_by_seq_no.last_position()?.into())
    }

    pub fn get_cached_packet_by_seq_no(&self, seq_no: SeqNo) -> Option<&Cached> {
        self.packet_by_seq_no.get(*seq_no)
    }

    pub fn get_cached_packet_smaller_than(&self, max_size: usize) -> Option<&Cached> {
        let quantized_size = max_size / RTX_CACHE_SIZE_QUANTIZER;

        let seq_no = self.seq_no_by_quantized_size[..quantized_size]
            .iter()
            .rev()
            .filter(|seq_no| !seq_no.is_max())
            .find(|seq_no| self.packet_by_seq_no.contains(***seq_no))?;

        self.get_cached_packet_by_seq_no(*seq_no)
    }

    fn remove_old_packets(&mut self, now: Instant) {
        self.packet_by_seq_no.maybe_evict(now);
    }

    pub(crate) fn last_packet(&self) -> Option<&[u8]> {
        let packet = self.packet_by_seq_no.last()?;
        Some(packet.payload.as_ref())
    }

    pub(crate) fn clear(&mut self) {
        self.packet_by_seq_no.clear();
        self.seq_no_by_quantized_size = [SeqNo::MAX; RTX_CACHE_QUANTIZE_SLOTS];
    }
}

#[cfg(test)]
mod test {
    use crate::rtp_::RtpHeader;

    use super::*;

    fn after(now: Instant, millis: u64) -> Instant {
        now + Duration::from_millis(millis)
    }

    fn packet(now: Instant, seq_no: u64, millis: u64) -> RtpPacket {
        RtpPacket {
            header: RtpHeader::default(),
            seq_no: seq_no.into(),
            time: MediaTime::from_90khz(0),
            payload: millis.to_be_bytes().into(),
            vp8_patch: None,
            timestamp: after(now, millis),
            last_sender_info: None,
            nackable: true,
        }
    }

    fn key(p: &RtpPacket) -> (SeqNo, Vec<u8>) {
        (p.seq_no, p.payload.to_vec())
    }

    fn cached_key(c: &Cached) -> (SeqNo, Vec<u8>) {
        (c.seq_no, c.payload.to_vec())
    }

    #[test]
    fn rtx_cache_0_sized() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(0, Duration::from_secs(3));
        rtx_cache.cache_sent_packet(packet(now, 1, 10), after(now, 10));
        assert_eq!(
            Some(key(&packet(now, 1, 10))),
            rtx_cache.get_cached_packet_by_seq_no(1.into()).map(cached_key)
        );
        assert_eq!(
            Some(key(&packet(now, 1, 10))),
            rtx_cache.get_cached_packet_smaller_than(1000).map(cached_key)
        );
    }

    #[test]
    fn rtx_cache_0_duration() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(10, Duration::from_secs(0));
        rtx_cache.cache_sent_packet(packet(now, 1, 10), after(now, 10));
        assert!(rtx_cache.get_cached_packet_by_seq_no(1.into()).is_none());
        assert!(rtx_cache.get_cached_packet_smaller_than(1000).is_none());
    }

    #[test]
    fn rtx_cache_1_sized() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(1, Duration::from_secs(3));
        rtx_cache.cache_sent_packet(packet(now, 1, 10), after(now, 10));
        assert_eq!(
            Some(key(&packet(now, 1, 10))),
            rtx_cache.get_cached_packet_by_seq_no(1.into()).map(cached_key)
        );
        assert_eq!(
            Some(key(&packet(now, 1, 10))),
            rtx_cache.get_cached_packet_smaller_than(1000).map(cached_key)
        );
        assert_eq!(
            Some(key(&packet(now, 1, 10))),
            rtx_cache.get_cached_packet_smaller_than(25).map(cached_key)
        );
        assert!(rtx_cache.get_cached_packet_smaller_than(24).is_none());
        rtx_cache.cache_sent_packet(packet(now, 2, 20), after(now, 20));
        assert_eq!(
            Some(key(&packet(now, 2, 20))),
            rtx_cache.get_cached_packet_by_seq_no(2.into()).map(cached_key)
        );
    }

    #[test]
    fn rtx_cache_100_sized_backwards() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(100, Duration::from_secs(3));

        for i in 1..=200 {
            let seq_no = 201 - i;
            let pkt = packet(now, seq_no, (201 - i) * 10);
            let now = after(now, i * 10);
            rtx_cache.cache_sent_packet(pkt, now);
        }

        assert_eq!(
            Some(key(&packet(now, 200, 2000))),
            rtx_cache.get_cached_packet_by_seq_no(200.into()).map(cached_key)
        );
        assert!(rtx_cache.get_cached_packet_by_seq_no(100.into()).is_none());
        assert!(rtx_cache.get_cached_packet_by_seq_no(101.into()).is_none());
    }

    #[test]
    fn rtx_cache_eviction() {
        let now = Instant::now();
        // Cache can take all entries
        let mut rtx_cache = RtxCache::new(400, Duration::from_secs(1));
        for i in 1..=200 {
            let seq_no = i;
            let pkt = packet(now, seq_no, i * 10);
            let now = after(now, i * 10);
            rtx_cache.cache_sent_packet(pkt, now);
        }

        assert!(rtx_cache.get_cached_packet_by_seq_no(99.into()).is_none());

        assert_eq!(
            Some(key(&packet(now, 100, 1000))),
            rtx_cache.get_cached_packet_by_seq_no(100.into()).map(cached_key)
        );
        assert_eq!(
            Some(key(&packet(now, 200, 2000))),
            rtx_cache.get_cached_packet_by_seq_no(200.into()).map(cached_key)
        );
    }
}
