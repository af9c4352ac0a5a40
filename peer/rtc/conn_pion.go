//go:build !js

package rtc

import (
	"github.com/pion/webrtc/v4"

	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/protocol"
)

// API builds a Transport's PeerConnections: pion's webrtc.API natively.
// Natively, LoopbackAPI restricts ICE to 127.0.0.1 for tests.
type API = webrtc.API

// initialPath: pion's own ICE names the pair as soon as it connects.
const initialPath = peer.PathDirect

// defaultAPI is the API of a Transport whose Config.API is nil.
func defaultAPI(relayOnly bool) *API {
	var se webrtc.SettingEngine
	if relayOnly {
		RelayOnlySettings(&se)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// RelayOnlySettings tunes a SettingEngine for Config.RelayOnly. pion waits
// 2 s before it nominates a relayed pair, so that a direct pair can win
// first; with relay-only candidates there is none, and pion/ice skips the
// wait only for agents built from its legacy AgentConfig, not for
// webrtc's. Without this a relay-only link takes 2 s longer to open.
func RelayOnlySettings(se *webrtc.SettingEngine) {
	se.SetRelayAcceptanceMinWait(0)
}

// pionConn is a peerConn on pion's PeerConnection.
type pionConn struct{ pc *webrtc.PeerConnection }

func newPeerConn(api *API, ice []protocol.ICEServer, relayOnly bool, ev pcEvents) (peerConn, error) {
	pcfg := webrtc.Configuration{ICEServers: iceServers(ice)}
	if relayOnly {
		pcfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := api.NewPeerConnection(pcfg)
	if err != nil {
		return nil, err
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil { // nil: gathering complete
			ev.candidate(candidateInit(c.ToJSON()))
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { ev.state(connStateOf(s.String())) })
	pc.OnDataChannel(func(dc *webrtc.DataChannel) { ev.dataChannel(pionChannel{dc}) })
	return pionConn{pc}, nil
}

func iceServers(in []protocol.ICEServer) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(in))
	for _, s := range in {
		ws := webrtc.ICEServer{URLs: s.URLs, Username: s.Username}
		if s.Credential != "" {
			ws.Credential = s.Credential
		}
		out = append(out, ws)
	}
	return out
}

func (c pionConn) createDataChannel(label string, r Reliability) (dataChannel, error) {
	ordered := r == ReliableOrdered
	in := &webrtc.DataChannelInit{Ordered: &ordered}
	if r == Unreliable {
		zero := uint16(0)
		in.MaxRetransmits = &zero
	}
	dc, err := c.pc.CreateDataChannel(label, in)
	if err != nil {
		return nil, err
	}
	return pionChannel{dc}, nil
}

func (c pionConn) offer() (string, error) {
	o, err := c.pc.CreateOffer(nil)
	if err == nil {
		err = c.pc.SetLocalDescription(o)
	}
	return o.SDP, err
}

func (c pionConn) acceptOffer(sdp string) (string, error) {
	err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp})
	var ans webrtc.SessionDescription
	if err == nil {
		ans, err = c.pc.CreateAnswer(nil)
	}
	if err == nil {
		err = c.pc.SetLocalDescription(ans)
	}
	return ans.SDP, err
}

func (c pionConn) setAnswer(sdp string) error {
	return c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
}

func (c pionConn) addCandidate(ci candidateInit) error {
	return c.pc.AddICECandidate(webrtc.ICECandidateInit(ci))
}

func (c pionConn) close() error { return c.pc.Close() }

// selectedPair reads the pair from pion's ICE transport.
func (c pionConn) selectedPair() (local, remote string, err error) {
	sctp := c.pc.SCTP()
	if sctp == nil {
		return "", "", nil
	}
	dtls := sctp.Transport()
	if dtls == nil {
		return "", "", nil
	}
	ice := dtls.ICETransport()
	if ice == nil {
		return "", "", nil
	}
	pair, err := ice.GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local == nil || pair.Remote == nil {
		return "", "", err
	}
	return candidateType(pair.Local.Typ), candidateType(pair.Remote.Typ), nil
}

func candidateType(t webrtc.ICECandidateType) string {
	if t == webrtc.ICECandidateTypeUnknown {
		return ""
	}
	return t.String()
}

// pionChannel is a dataChannel on pion's DataChannel.
type pionChannel struct{ dc *webrtc.DataChannel }

func (c pionChannel) label() string { return c.dc.Label() }

func (c pionChannel) handle(lowWater int, ev dcEvents) {
	c.dc.SetBufferedAmountLowThreshold(uint64(lowWater))
	c.dc.OnBufferedAmountLow(ev.bufferedLow)
	c.dc.OnOpen(ev.open)
	c.dc.OnMessage(func(m webrtc.DataChannelMessage) {
		if !m.IsString {
			ev.message(m.Data)
		}
	})
	c.dc.OnClose(ev.close)
	// pion's OnOpen itself calls open when the channel is already open.
}

func (c pionChannel) bufferedAmount() int   { return int(c.dc.BufferedAmount()) }
func (c pionChannel) send(msg []byte) error { return c.dc.Send(msg) }
func (c pionChannel) close() error          { return c.dc.Close() }
