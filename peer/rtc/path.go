package rtc

import "github.com/banyan-live/banyan/peer"

// pathOf names the path of a selected ICE pair from its candidates' types
// ("host", "srflx", "prflx", "relay"): a relay candidate on either side
// means the link goes through TURN. An empty type means the pair is not
// known, and so is the path.
func pathOf(localTyp, remoteTyp string) string {
	switch {
	case localTyp == "" || remoteTyp == "":
		return peer.PathUnknown
	case localTyp == "relay" || remoteTyp == "relay":
		return peer.PathTURN
	}
	return peer.PathDirect
}

// statEntry is the part of one RTCStats dictionary (from
// RTCPeerConnection.getStats) that finding the selected pair needs.
type statEntry struct {
	ID   string
	Type string // "transport", "candidate-pair", "local-candidate", ...
	// transport
	SelectedPairID string
	// candidate-pair
	LocalID, RemoteID string
	Selected          bool // Firefox's non-standard flag
	Nominated         bool
	State             string
	// local-candidate, remote-candidate
	CandidateType string
}

// selectedFromStats finds the selected candidate pair in a stats report
// and returns its candidates' types, empty when it cannot tell. Browsers
// differ: Chromium and WebKit name the pair in the transport stats'
// selectedCandidatePairId; Firefox has no transport stats and flags the
// pair itself with selected: true. A nominated, succeeded pair is the last
// resort.
func selectedFromStats(entries []statEntry) (localTyp, remoteTyp string) {
	byID := make(map[string]statEntry, len(entries))
	for _, e := range entries {
		byID[e.ID] = e
	}
	var pair statEntry
	found := false
	for _, e := range entries {
		if e.Type == "transport" && e.SelectedPairID != "" {
			if p, ok := byID[e.SelectedPairID]; ok {
				pair, found = p, true
				break
			}
		}
	}
	for _, pass := range []func(statEntry) bool{
		func(e statEntry) bool { return e.Selected },
		func(e statEntry) bool { return e.Nominated && e.State == "succeeded" },
	} {
		if found {
			break
		}
		for _, e := range entries {
			if e.Type == "candidate-pair" && pass(e) {
				pair, found = e, true
				break
			}
		}
	}
	if !found {
		return "", ""
	}
	return byID[pair.LocalID].CandidateType, byID[pair.RemoteID].CandidateType
}
