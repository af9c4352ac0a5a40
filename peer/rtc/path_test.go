package rtc

import (
	"testing"

	"github.com/banyan-live/banyan/peer"
)

func TestPathOf(t *testing.T) {
	tests := []struct {
		local, remote, want string
	}{
		{"host", "host", peer.PathDirect},
		{"srflx", "prflx", peer.PathDirect},
		{"relay", "host", peer.PathTURN},
		{"host", "relay", peer.PathTURN},
		{"", "host", peer.PathUnknown},
		{"", "", peer.PathUnknown},
	}
	for _, tt := range tests {
		if got := pathOf(tt.local, tt.remote); got != tt.want {
			t.Errorf("pathOf(%q, %q) = %q, want %q", tt.local, tt.remote, got, tt.want)
		}
	}
}

// The stats reports are shaped like the browsers' own (the fields this
// code reads, as Chromium 156 and Firefox ESR 153 fill them).
func TestSelectedFromStats(t *testing.T) {
	cands := []statEntry{
		{ID: "L1", Type: "local-candidate", CandidateType: "host"},
		{ID: "L2", Type: "local-candidate", CandidateType: "relay"},
		{ID: "R1", Type: "remote-candidate", CandidateType: "host"},
	}
	with := func(es ...statEntry) []statEntry { return append(append([]statEntry{}, es...), cands...) }
	tests := []struct {
		name                string
		entries             []statEntry
		wantLocal, wantRemo string
	}{
		{"chromium: transport names the pair", with(
			statEntry{ID: "T", Type: "transport", SelectedPairID: "P2"},
			statEntry{ID: "P1", Type: "candidate-pair", LocalID: "L1", RemoteID: "R1", Nominated: true, State: "succeeded"},
			statEntry{ID: "P2", Type: "candidate-pair", LocalID: "L2", RemoteID: "R1", Nominated: true, State: "succeeded"},
		), "relay", "host"},
		{"firefox: the pair says selected", with(
			statEntry{ID: "P1", Type: "candidate-pair", LocalID: "L2", RemoteID: "R1", State: "succeeded"},
			statEntry{ID: "P2", Type: "candidate-pair", LocalID: "L1", RemoteID: "R1", Selected: true, Nominated: true, State: "succeeded"},
		), "host", "host"},
		{"only nominated and succeeded", with(
			statEntry{ID: "P1", Type: "candidate-pair", LocalID: "L2", RemoteID: "R1", State: "in-progress", Nominated: true},
			statEntry{ID: "P2", Type: "candidate-pair", LocalID: "L2", RemoteID: "R1", State: "succeeded", Nominated: true},
		), "relay", "host"},
		{"transport names a pair not in the report", with(
			statEntry{ID: "T", Type: "transport", SelectedPairID: "gone"},
			statEntry{ID: "P1", Type: "candidate-pair", LocalID: "L1", RemoteID: "R1", Selected: true},
		), "host", "host"},
		{"no pair yet", with(
			statEntry{ID: "P1", Type: "candidate-pair", LocalID: "L1", RemoteID: "R1", State: "in-progress"},
		), "", ""},
		{"pair without its candidates", []statEntry{
			{ID: "P1", Type: "candidate-pair", LocalID: "L9", RemoteID: "R9", Selected: true},
		}, "", ""},
		{"empty report", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, r := selectedFromStats(tt.entries)
			if l != tt.wantLocal || r != tt.wantRemo {
				t.Fatalf("got %q/%q, want %q/%q", l, r, tt.wantLocal, tt.wantRemo)
			}
		})
	}
}
