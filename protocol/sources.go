package protocol

// Sources is what a viewer received, by sender. It is the one definition
// of "where did the video come from" that the viewer's stats panel, the
// tracker's dashboard, /metrics and `banyan peer --json` all use:
// Viewers (other viewers over WebRTC), Edges (an operator's relay edges
// over WebRTC), Seeder (the seeder's root peer over WebRTC: seeder egress,
// not P2P) and Origin (HTTP, also seeder egress) are disjoint and add up to
// everything received. TURN is a path, not a sender: the part of the
// WebRTC bytes, whoever sent them, relayed through a TURN server.
type Sources struct {
	Viewers uint64 `json:"viewers"`
	Edges   uint64 `json:"edges"`
	Seeder  uint64 `json:"seeder"`
	Origin  uint64 `json:"origin"`
	// TURN is the part of Viewers+Edges+Seeder relayed through TURN.
	TURN uint64 `json:"turn"`
}

// Total is everything received.
func (s Sources) Total() uint64 { return s.Viewers + s.Edges + s.Seeder + s.Origin }

// Peers is what other peers sent: viewers and edges, not the seeder.
func (s Sources) Peers() uint64 { return s.Viewers + s.Edges }

// Offload is the share of received bytes the seeder did not send (neither
// its root peer nor its origin); ok is false before anything arrived.
func (s Sources) Offload() (v float64, ok bool) {
	t := s.Total()
	if t == 0 {
		return 0, false
	}
	return float64(s.Peers()) / float64(t), true
}

// SourcesOf reads the split from a stats report: BytesP2P and BytesTURN
// hold every WebRTC byte, BytesSeeder and BytesEdge the parts of them the
// seeder and edges sent.
func SourcesOf(st Stats) Sources {
	webrtc := st.BytesP2P + st.BytesTURN
	seeder := min(st.BytesSeeder, webrtc)
	edges := min(st.BytesEdge, webrtc-seeder)
	return Sources{Viewers: webrtc - seeder - edges, Edges: edges, Seeder: seeder, Origin: st.BytesOrigin, TURN: st.BytesTURN}
}

// Add adds o to s, field by field.
func (s *Sources) Add(o Sources) {
	s.Viewers += o.Viewers
	s.Edges += o.Edges
	s.Seeder += o.Seeder
	s.Origin += o.Origin
	s.TURN += o.TURN
}
