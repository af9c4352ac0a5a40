package rtc

import (
	"github.com/banyan-live/banyan/internal/jsonwire"
	"github.com/banyan-live/banyan/peer"
)

// peerConn is what a Link needs of a PeerConnection. Natively it is pion's
// (conn_pion.go); in the browser it is a thin syscall/js binding of the
// browser's own RTCPeerConnection (conn_js.go). The browser already
// implements WebRTC: wrapping it directly instead of through pion's js
// build keeps pion's ICE, STUN, TURN, mDNS, DTLS, SCTP, SDP and the
// x509/RSA/ECDSA code it pulls out of the viewer's wasm (see
// docs/wasm-size.md). The Link's logic (timeouts, glare, candidate
// buffering, backpressure, closing) stays in rtc.go, shared by both.
//
// The calls that wait for the other side's JavaScript promises
// (offer, acceptOffer, setAnswer, addCandidate, selectedPair) must not
// be made from the event callbacks; the Link makes them from its callers'
// goroutines.
type peerConn interface {
	// createDataChannel creates the data channel of the dialing side.
	createDataChannel(label string, r Reliability) (dataChannel, error)
	// offer creates an offer, sets it as the local description and
	// returns its SDP.
	offer() (string, error)
	// acceptOffer sets the remote offer, creates the answer, sets it as
	// the local description and returns its SDP.
	acceptOffer(sdp string) (string, error)
	// setAnswer sets the remote answer.
	setAnswer(sdp string) error
	addCandidate(c candidateInit) error
	// selectedPair is the candidate types ("host", "srflx", "prflx",
	// "relay") of the selected ICE pair, empty where it is not known.
	selectedPair() (local, remote string, err error)
	close() error
}

// pcEvents are a peerConn's callbacks, set when it is made. Each is called
// on a goroutine of its own (never on the browser's event loop), so it may
// call the waiting methods.
type pcEvents struct {
	// candidate is a trickled local candidate (never the end of gathering).
	candidate func(candidateInit)
	state     func(connState)
	// dataChannel is a channel the remote side opened.
	dataChannel func(dataChannel)
}

// connState is the part of RTCPeerConnectionState the Link acts on.
type connState int

const (
	stateOther connState = iota
	stateConnected
	stateFailed
	stateClosed
)

// connStateOf maps an RTCPeerConnectionState name.
func connStateOf(s string) connState {
	switch s {
	case "connected":
		return stateConnected
	case "failed":
		return stateFailed
	case "closed":
		return stateClosed
	}
	return stateOther
}

// dataChannel is what a Link needs of an RTCDataChannel.
type dataChannel interface {
	label() string
	// handle sets the event callbacks and the buffered-amount threshold
	// below which bufferedLow fires. If the channel is already open,
	// open is called too (an incoming channel may open before its
	// callbacks are set).
	handle(lowWater int, ev dcEvents)
	bufferedAmount() int
	send(msg []byte) error
	close() error
}

// dcEvents are a dataChannel's callbacks; like pcEvents, each runs on a
// goroutine of its own, but for bufferedLow, which must not block (in the
// browser it runs on the event loop), and message, whose calls come in
// order on one goroutine in the browser.
type dcEvents struct {
	open, close, bufferedLow func()
	// message is a binary message (text messages are dropped); the
	// buffer is the callee's.
	message func(data []byte)
}

// candidateInit is RTCIceCandidateInit, the JSON of a trickled candidate
// in protocol.Signal.Candidate. Its fields and JSON names are those of
// pion's webrtc.ICECandidateInit, so native and browser peers read each
// other's.
type candidateInit struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex"`
	UsernameFragment *string `json:"usernameFragment"`
}

// updatePath reads the selected candidate pair's path; a known path is
// never overwritten by an unknown one.
func (l *Link) updatePath() {
	local, remote, err := l.pc.selectedPair()
	if err != nil {
		l.t.log.Debug("rtc: path not known", "remote", l.remote, "err", err)
	}
	if p := pathOf(local, remote); p != peer.PathUnknown {
		l.path.Store(p)
	}
}

// marshal writes c as encoding/json writes the struct (internal/jsonwire
// instead of encoding/json keeps reflection out of the browser's wasm;
// TestCandidateJSON holds the two to the same bytes).
func (c candidateInit) marshal() []byte {
	w := jsonwire.Writer{B: make([]byte, 0, 160)}
	w.Open()
	w.Key("candidate")
	w.String(c.Candidate)
	w.Key("sdpMid")
	writeOptString(&w, c.SDPMid)
	w.Key("sdpMLineIndex")
	if c.SDPMLineIndex == nil {
		w.Null()
	} else {
		w.Uint(uint64(*c.SDPMLineIndex))
	}
	w.Key("usernameFragment")
	writeOptString(&w, c.UsernameFragment)
	w.Close()
	return w.B
}

func writeOptString(w *jsonwire.Writer, s *string) {
	if s == nil {
		w.Null()
	} else {
		w.String(*s)
	}
}

// parseCandidate reads a candidate as encoding/json reads it into
// candidateInit (keys matched without case, unknown keys skipped).
func parseCandidate(b []byte) (candidateInit, error) {
	var c candidateInit
	r := jsonwire.NewReader(b)
	r.Object(func(key []byte) {
		switch string(key) { // folded: lower case
		case "candidate":
			r.String(&c.Candidate)
		case "sdpmid":
			readOptString(r, &c.SDPMid)
		case "sdpmlineindex":
			if r.Null() {
				c.SDPMLineIndex = nil
			} else if v, ok := r.Uint(16); ok {
				if c.SDPMLineIndex == nil {
					c.SDPMLineIndex = new(uint16)
				}
				*c.SDPMLineIndex = uint16(v)
			}
		case "usernamefragment":
			readOptString(r, &c.UsernameFragment)
		default:
			r.Skip()
		}
	})
	return c, r.Done()
}

func readOptString(r *jsonwire.Reader, p **string) {
	if r.Null() {
		*p = nil
		return
	}
	if *p == nil {
		*p = new(string)
	}
	r.String(*p)
}
