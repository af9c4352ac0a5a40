package node

import (
	"time"

	"github.com/banyan-live/banyan/protocol"
)

// Summary is what `banyan peer --json` prints when it leaves; the netns
// benchmark reads it back from each viewer.
type Summary struct {
	Stream       string          `json:"stream"`
	Peer         protocol.PeerID `json:"peer"`
	Depths       []int           `json:"depths"`
	MaxDepth     int             `json:"max_depth"`
	ChunksPlayed uint64          `json:"chunks_played"`
	FirstChunkMS int64           `json:"first_chunk_ms"`
	Stalls       uint64          `json:"stalls"`
	BadChunks    uint64          `json:"bad_chunks"`
	Repaired     uint64          `json:"repaired_from_origin"`
	// BytesP2P, BytesTURN and BytesOrigin are by path (p2p: WebRTC
	// direct from any sender, the seeder's root peer too); From splits the
	// same bytes by sender (protocol.Sources), and Offload is the share
	// other peers sent.
	BytesP2P    uint64           `json:"bytes_p2p"`
	BytesTURN   uint64           `json:"bytes_turn"`
	BytesOrigin uint64           `json:"bytes_origin"`
	From        protocol.Sources `json:"from"`
	Offload     *float64         `json:"offload"`
	BytesUp     uint64           `json:"bytes_up"`
	// StalledMS is time spent stalled; WatchedMS runs from playback start
	// to leaving (stall ratio = stalled_ms / watched_ms).
	StalledMS   int64  `json:"stalled_ms"`
	WatchedMS   int64  `json:"watched_ms"`
	DupBytes    uint64 `json:"duplicate_bytes"`
	UnsentBytes uint64 `json:"unsent_bytes"`
	// ReparentMS: lost parent link → new parent assigned, per occurrence.
	ReparentMS    []int64        `json:"reparent_ms,omitempty"`
	ParentChanges []ParentChange `json:"parent_changes,omitempty"`
}

// Fill sets what n knows at the end: its id, depths, re-parentings and
// the engine's counters and traffic. Stream, ChunksPlayed and
// FirstChunkMS are the caller's (its player counts them).
func (s *Summary) Fill(n *Node) {
	s.Peer, s.Depths = n.Self(), n.Depths()
	// The depth now counts too: an assignment handled before OnAssign
	// saw it (a seeder hand-off, a reconnect) still sets Depths.
	for _, d := range s.Depths {
		s.MaxDepth = max(s.MaxDepth, d)
	}
	for _, d := range n.Reparents() {
		s.ReparentMS = append(s.ReparentMS, d.Milliseconds())
	}
	s.ParentChanges = n.ParentChanges()
	if e := n.Engine(); e != nil {
		c := e.Counters()
		s.Stalls, s.BadChunks, s.Repaired = c.Stalls, c.BadChunks, c.RepairedOrigin
		t := e.Traffic()
		s.BytesP2P, s.BytesTURN, s.BytesOrigin, s.BytesUp = t.P2P, t.TURN, t.Origin, t.Up
		s.From = e.Sources()
		if off, ok := s.From.Offload(); ok {
			s.Offload = &off
		}
		s.StalledMS, s.DupBytes, s.UnsentBytes = t.StalledMS, t.Dup, t.Unsent
		if !c.StartedAt.IsZero() {
			s.WatchedMS = time.Since(c.StartedAt).Milliseconds()
		}
	}
}
