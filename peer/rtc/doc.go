package rtc

// # Choosing the data channel's reliability
//
// Measured by TestReliabilityModes (BANYAN_RTC_MEASURE=1 go test
// ./peer/rtc -run Reliab -v): two pion PeerConnections, 16 KiB messages
// sent as a 3 Mbit/s stream (a 94 KB chunk = 6 messages every 250 ms),
// latency from Send to OnMessage; then unpaced throughput under
// backpressure. On a shared 2-core machine, 2026-11:
//
//	network            mode                        p50      p95     lost    unpaced
//	loopback (UDP)     reliable, ordered           2.0 ms   4.1 ms  0/144    84 Mbit/s
//	loopback (UDP)     reliable, unordered         1.9 ms   3.7 ms  0/144    70 Mbit/s
//	loopback (UDP)     unordered, maxRetransmits=0 1.9 ms   4.0 ms  0/144   148 Mbit/s
//	vnet 20 ms, 1 %    reliable, ordered           144 ms   269 ms  0/144   2.7 Mbit/s
//	vnet 20 ms, 1 %    reliable, unordered         186 ms   515 ms  0/144   2.2 Mbit/s
//	vnet 20 ms, 1 %    unordered, maxRetransmits=0 22 ms    24 ms   15/144  105 Mbit/s
//
// (Unpaced loopback throughput varies 2-5x between runs with the machine's
// load; the latencies are stable.) Without loss the modes are equivalent.
// With 1 % packet loss the reliable modes fall below the stream rate and
// add hundreds of milliseconds: a lost packet at the tail of a burst can
// only be recovered by SCTP's retransmission timer, whose minimum is 1 s in
// pion (RFC 4960), and ordered delivery then holds every later piece
// behind it. Unreliable delivery keeps latency at the path delay; a 16 KiB
// message spans about 14 packets, so 1 % packet loss loses about 10-14 % of
// pieces, which the engine re-requests (PieceGap, then a want to the parent
// that sent the rest) well inside the playout delay. Banyan therefore uses
// unordered, maxRetransmits=0 (Unreliable, the zero Reliability). The
// engine's TestLossyLinks runs 50 peers with 5 % message loss stall-free.
//
// Per-hop latency of the engine over these channels on loopback
// (TestEnginesOverDataChannels, root -> A -> B, 3 Mbit/s, 94 KB chunks):
// publish to A playing p50 ≈ 5 ms, p95 ≈ 8 ms; A playing to B playing
// (the relay hop, cut-through) p50 ≈ 1.3 ms, p95 ≈ 2.6 ms.

// # Browser differences
//
// In the js build the links use the browser's own RTCPeerConnection and
// RTCDataChannel through conn_js.go, a thin syscall/js binding (pion's js
// build did the same wrapping but kept pion's ICE, DTLS, SCTP, certificate
// and crypto code in the wasm: 2 MB raw, docs/wasm-size.md). A method one
// engine lacks would panic in syscall/js and end the whole program, so
// every call into the browser is caught and becomes the link's error. The
// one such method this package used, RTCIceTransport.getSelectedCandidatePair
// (Firefox ESR 153 has none), is feature-checked in path_js.go, which falls
// back to the selected pair in getStats (Firefox flags the pair
// "selected"; Chromium names it in the transport stats), else the path is
// peer.PathUnknown. Everything else used here (createDataChannel,
// offer/answer, addIceCandidate, connectionState and its event, the data
// channel and buffered-amount events, binaryType, pc.sctp) is in Chromium,
// Firefox and WebKit. Config.Guard turns a panic in any callback into a
// failed link.
