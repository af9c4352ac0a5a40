// Package overlay is the tracker's stripe-forest overlay for one stream: a
// pure data structure (no I/O, no goroutines, no clock of its own) that
// decides which peer feeds which.
//
// # Model
//
// The stream is cut into K stripes; each stripe is a tree rooted at the
// seeder (Root). Every peer has one parent per stripe, so K parents. A peer's
// Capacity counts children it can feed, in units of one stripe stream
// (upload bitrate / (stream bitrate / K)), as computed by the tracker from
// declared and, better, measured upload.
//
//   - A peer with Capacity >= MinInteriorCapacity (default 2) that did not opt
//     out of upload is interior in exactly one stripe (its "home"), where it
//     may have up to Capacity children. It is a leaf in all other stripes.
//     The home is the stripe whose interior capacity is most needed: fewest
//     free slots net of peers waiting on the origin. This is SplitStream's
//     rule, and it is what lets a departure cost each viewer at most one of
//     its K parents' subtrees. Homes are chosen from guessed capacities,
//     so Tick moves a peer's home from a stripe with spare slots to one
//     whose peers wait on the origin when its whole capacity fits in the
//     spare (where SplitStream lets spare capacity forward any stripe).
//   - Weaker and opted-out peers are leaves everywhere.
//   - The seeder has RootCapacity slots in every stripe and is never exceeded.
//   - When a stripe has no usable slot for a peer, its parent there is
//     Origin: it fetches that stripe over HTTP (Result.StripeErr returns
//     ErrNoCapacity). Such a peer still forwards to its own subtree. As soon
//     as a slot frees up anywhere it is attached to it (and the Check
//     invariant is that no origin-fed peer could be attached).
//
// Because most viewers can forward, total slots grow with the audience: the
// mesh scales itself, and origin fallback is only needed when K times the
// forwarding demand exceeds what the peers offer.
//
// # Placement (Join)
//
// Per stripe, a peer goes to the shallowest node with a free slot. Free-slot
// nodes are kept in per-stripe, per-depth buckets, so finding the shallowest
// level costs O(levels), and up to Sample eligible candidates of that level
// are compared on the tie-breakers, in order: pairs known to connect (not
// both symmetric NAT, see Config.Connectable; a pair that cannot connect is
// accepted only if nothing connectable exists within NATSlack extra levels,
// as TURN can still carry it), same Locality label, more free slots. Parents
// a peer reported bad are never chosen for it again (last 4 remembered).
//
// Interior peers must sit above leaves, or the trees grow only by the
// interior fraction per level (with K=4, about 1.3 instead of about 8) and
// become tens of levels deep. So in its home stripe an interior joiner that
// finds an attached leaf at a shallower level than the best free slot (or no
// free slot at all) takes that leaf's place and adopts it: one extra move,
// and the tree fills top-down with forwarding peers. This is also how a full
// tree grows: the leaf displaced from a full level hangs under the newcomer.
//
// # Departures (Leave)
//
// Only the departed peer's edges and its orphans' parent edges change. In
// each stripe, orphans are re-placed interior first, strongest first, each
// with its whole subtree, at the shallowest eligible slot: typically the
// strongest orphan takes the departed peer's own slot (its subtree moves up
// one level) and adopts its siblings, which then keep their depth. An orphan
// is never placed inside its own subtree: the candidate's ancestor walk is
// bounded by the depth difference, O(depth), and a subtree-free-slot sum per
// node tells in O(1) whether any slot exists outside the orphan's subtree.
// Orphans with nowhere to go are sent to the origin with their subtrees.
// The only other edges that may change are origin-fed peers being attached
// to the slots the departure freed.
//
// # Capacity updates and rebalancing
//
// UpdateCapacity replaces declared capacity with measured capacity. Strong
// peers move up (swap with a shallower leaf, or with a weaker parent by a
// margin of SwapMargin), weakened peers let a strong child rise above them,
// and peers whose capacity fell below their fan-out shed children. Every
// such move counts against MaxMovesPerUpdate per call and a token bucket
// refilled from the time the caller passes in at half of MovesPerSecond +
// MovesPerPeer × peers: churn is bounded. A peer still over capacity is
// "pending": it gets no new children and Tick finishes shedding as budget
// returns. Tick also lifts the deepest interior peers above shallower
// leaves, which undoes the depth that departures add (orphan subtrees
// re-hung low). Tick has a bucket of its own, the other half of the rate:
// with one shared bucket, capacity updates at 10k viewers spent all of it
// (5,829 moves in 60 s) and the trees only deepened. Shedding has a third
// bucket at the full rate, spent after Tick's own and only on moves to a
// free slot: the children of a peer measured too small for them are late
// until they move, and after a flash crowd's guessed capacities are
// measured, shedding from Tick's half of the rate took 14 s while free
// slots waited.
//
// ReportBadParent re-parents a child whose parent failed it (no ICE
// connection, bad chunks); ReportGoneParent one whose parent went quiet,
// only under a peer the tracker has heard from since (Heard: after a mass
// departure the other victims, not yet reported, are the shallowest free
// slots), else on the origin until one is; SetNAT records a learned NAT type and moves the
// peer and its children off pairs now known not to connect. Evicting a
// malicious peer is Leave.
//
// # Invariants
//
// Check verifies them all from scratch (see its documentation); the
// property tests run it after every operation of long random sequences, and
// FuzzOps after every operation decoded from arbitrary bytes, while also
// replaying the reported Changes to prove they describe the forest exactly.
//
// # Cost
//
// Join is O(K * (levels + Sample)) plus one ancestor update of the subtree
// free sums, O(depth). Leave is O(K * orphans * (levels + Sample)) plus the
// depth update of moved subtrees (O(subtree) for a subtree whose depth
// changed; the strongest orphan's move up by one level is the common case).
// Per peer state is one fixed node record and K link records (48 bytes),
// about 200 bytes per peer at K=2 and 320 at K=4 including the id map and
// indexes. No allocation per operation once buffers are warm: the returned
// slices are reused and valid until the next mutating call.
//
// Measured on a shared 2-core VM (Bench, 100k peers, realistic capacity
// mix, RootCapacity 8): about 200k-500k joins/s, assign p99 a few µs, max
// depth 6 after building (log_F(N) = 5.6 where F is the mean capacity of
// forwarding peers) and 7-9 after 20% churn with Tick rebalancing.
//
// A Forest is not safe for concurrent use; the tracker serialises calls per
// stream (one mutex or one goroutine per stream).
package overlay
