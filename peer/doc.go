// Package peer is Banyan's peer engine: the one piece of code that runs in
// the browser (GOOS=js), in a native headless viewer, in a relay edge and,
// as the root, inside the seeder. It is transport-agnostic and does no I/O:
// transports (peer/rtc for WebRTC, peer/memnet for simulation) deliver
// messages with HandleMessage and carry the engine's messages on Links; the
// origin (HTTP fallback) is an interface the owner implements (net/http
// natively, fetch in the browser, so the wasm build stays free of
// net/http); the owner calls Tick every ~50 ms. With a virtual clock
// (Config.Clock) and memnet everything is deterministic.
//
// # Overlay
//
// The stream is split into K stripes: chunk seq travels in stripe seq mod K.
// The engine has one parent per stripe (SetParent, ClearParent; parent 0
// means "origin-fed", as protocol.Assign says) and children per stripe
// (AddChild, RemoveChild). Neighbours share one Link whatever their roles.
//
// The init segment (seq 0) belongs to no stripe: every parent may send it
// and it is forwarded to every child. A child that subscribes (below) gets
// it from each of its K parents at once, so a joiner needs no HTTP request;
// duplicates cost K copies of about a kilobyte.
//
// # Data flow and verification
//
// Pieces (chunk.Piece) are accepted only from the stripe's parent (any
// parent for seq 0) or from a neighbour we asked in a repair request, and
// only inside the window: not below the floor (the newest verified chunk
// minus Window), not more than MaxAhead chunks past it, never an older
// epoch. A fresh piece is forwarded to the stripe's children the moment it
// arrives (cut-through), before its chunk is complete. When the reassembler
// completes a chunk it is verified (chunk.Verify, or chunk.Open, which
// verifies, when it will be played) before it is kept in the window (for
// repair requests and catch-up) and before it is played.
//
// Cut-through means a forged chunk has already been forwarded when it fails
// verification. It is never kept and never played anywhere: every receiver
// verifies at completion. To keep honest relays from being blamed, a peer
// that detects a forgery sends its children a "bad" notice for the chunk
// (and passes on notices it receives for chunks it forwarded); a child
// reports its parent (protocol.ReportBadChunk with the sealed chunk, which
// the tracker verifies itself) only if no notice came within BadGrace. A
// malicious parent that sends notices for its own forgeries escapes the
// report but achieves nothing: its children repair the chunk elsewhere and
// it shows up as a parent whose stripe is always repaired. Store-and-forward
// on verify would add a whole chunk's transfer time per hop (tens of ms per
// hop at 3 Mbit/s over a 10 Mbit/s uplink), against the ≤ 20 ms per hop
// target, so the engine trades it for the notice.
//
// # Playout and deadlines
//
// Playback starts at the newest verified keyframe chunk once the init
// segment is in (Player.Init, then Player.Chunk in sequence order). The
// engine estimates the live edge per stripe as the 90th percentile of
// (arrival time of the first piece − media time) over the last 16 chunks
// that came from that stripe's parent (a catch-up burst counts once); a
// chunk is expected at its stripe's live edge + media time (timing.go).
//
// Deadlines come from the playout clock (timing.go playClock), which models
// the player: it starts at the latest stripe's live edge plus the adaptive
// playout target (PlayoutDelay up to MaxPlayoutDelay; down to
// QuietPlayoutDelay on a quiet path, whose parents delivered 40 chunks in a
// row whole, unrepaired and with room to spare), catches up at most
// 0.15 s per second when the goal moves earlier, falls back at most 0.05 s
// per second when it moves later (the browser player slows to 0.95 while
// its buffer is under the target), and jumps only when a stall made the
// player wait. A chunk still missing at base + media time is a stall: it is
// skipped (the Player sees a gap in sequence numbers) and counted. An
// estimate that jumps (a new parent higher in the tree) never makes chunks
// overdue at once.
//
// # Repair
//
// Driven by Tick, deterministic: a missing chunk waits RepairDelay past its
// expected arrival (no wait if its parent already sent a later chunk of the
// stripe, or the stripe has no parent; a chunk whose pieces stopped coming
// for PieceGap asks its own parent first, since it lost a piece on the
// way), then asks the other parents one at a time (want, PeerTimeout each,
// a "nope" answer moves on at once), then the origin, which is asked in any
// case the origin lead before the deadline, even while a want is
// outstanding or the parent is still sending (the first complete copy
// wins); such a rescue raises the playout target a little. The lead is what
// this peer's rescues took (mean + 4 deviations + 50 ms; OriginLead until
// four were timed). When the origin answers ranges (RangeOrigin) and part
// of the chunk came from the mesh, the rescue asks for the bytes of the
// missing pieces only (chunk.Gap). Origin-fed stripes fetch each chunk
// when it is expected or near its deadline. A peer that got nothing from
// its parents within StartTimeout starts from the origin's live edge.
// Repaired pieces are forwarded to children like any others; whole origin
// chunks are forwarded after verification.
//
// The first complete copy stops the others: a chunk completed from anyone
// but its parent (a repair, the origin) or given up sends the parent a
// have notice, and a chunk completed from anyone sends one to every
// neighbour asked to repair it; the sender drops what of the chunk it
// still has queued for us. A want for a chunk whose parent is still
// sending it asks only for the holes below the last piece it sent (the
// rest is on its way), and a parent asked again by its child leaves out
// the pieces still queued or on their way to it (sentLog), so a late
// forward taken for a loss is not sent twice.
//
// # Protection
//
// Every neighbour has a token bucket over everything it sends us
// (FloodFactor × the measured stream rate, 10 s of burst); messages over it
// are dropped and counted (Counters.Flooded). Repair answers have their own
// budget (2× the stream rate). Duplicates, stale and unsolicited pieces are
// dropped before reassembly and never forwarded. A parent that delivers
// nothing for SilentAfter is reported (protocol.ReportSilent): only
// verified progress counts as delivery, a chunk with its pieces among the
// sources that verifies or a genuine duplicate of a held one, never an
// unverified piece (liveness.go). A parent that goes quiet for longer
// than its verified deliveries are ever apart (at least 750 ms, at most
// SilentAfter/2) is pinged, twice, each ping given two round trips; when
// neither is answered it is reported at once, 0.75–1.5 s after it stopped
// instead of 3 s. A parent that answers is alive and starved (its own
// parent failed) and gets the full SilentAfter, so a gap running down a
// subtree does not move every child in it. With Config.ProofKey a parent signs, per
// chunk and child, the hash of what it verified and fed ('D' statements);
// a bad-chunk report carries the accused's statement for exactly the bad
// bytes when it signed one, which lets the tracker evict it (proof.go).
//
// A parent that floods is reported (protocol.ReportFlood) once per
// ReportCooldown; the excess is dropped either way.
//
// # Slow children
//
// Link.Send never blocks; over its high-water mark it fails with
// ErrBackpressure. The engine then skips that child for the rest of the
// chunk (the parent and the other children are never delayed; the child
// repairs the chunk from its other parents or the origin) and counts the
// skip; SlowSkips skipped chunks within SlowPeriod report the child
// (protocol.ReportSlow).
//
// # Joining
//
// SetParent sends the new parent a subscribe message; once the parent has
// the child (AddChild, in either order) it answers with the init segment
// and the stripe's chunks since the newest keyframe, so a joiner plays
// within one round trip from a peer. The subscribe says what the child
// holds (the init segment, and every chunk of the stripe it still needs
// before a sequence): a child moved to another parent mid-stream holds the
// whole burst, which the parent then leaves out of both the burst and its
// forwarding.
//
// # Stats
//
// Stats returns protocol.Stats: bytes received by path (p2p, turn, origin),
// bytes sent, upload rate, buffer, stalls and per-parent rates. Hop latency
// is half the median RTT to the parents, measured with ping/pong control
// messages every PingInterval: pieces carry no timestamp, and peers' clocks
// are not comparable, while RTT/2 needs no clock agreement and includes the
// queueing a piece meets on the link.
//
// # Messages
//
// Every data channel message starts with a type byte and a version byte
// (1); integers are big-endian; a message is at most chunk.MaxMessageSize.
//
//	'P' piece      chunk.AppendPiece: epoch(4) seq(8) index(2) count(2) data
//	'W' want       epoch(4) seq(8) n(2) n×index(2)   n = 0: every piece; n ≤ 512
//	'N' nope       epoch(4) seq(8)                   "I do not hold it"
//	'B' bad        epoch(4) seq(8)                   "it failed verification here; I was fooled too"
//	'S' subscribe  stripe(1) [flags(1) epoch(4) from(8)] "you are my parent in this stripe";
//	                                                 optional: "I hold the init (flags 1) and
//	                                                 this stripe's chunks before from"
//	'R' relay      stripe(1) n(2)                    "I feed n children in this stripe" (send order)
//	'I' ping       token(8)                          answered by 'O' with the same token
//	'O' pong       token(8)
//	'H' have       epoch(4) seq(8)                   "stop sending it, I have it" (to a parent
//	                                                 or a neighbour asked to repair it)
//	'D' statement  epoch(4) seq(8) sha256(32) sig(64) parent to child: protocol.AppendProof
//
// Unknown types and malformed messages are counted and dropped.
//
// # Concurrency
//
// All methods are safe for concurrent use; one mutex guards the state.
// Player and Report callbacks and origin requests run outside the lock, in
// order, on whichever goroutine drains the queue; they may call the
// engine's methods (re-entrant calls queue their own callbacks). The only
// goroutines the engine starts are blocking origin requests (none when the
// Origin implements AsyncOrigin); Close cancels and waits for them. The
// engine never closes Links: their transport does.
package peer
