//go:build !js

package rtc

import (
	"github.com/pion/webrtc/v4"

	"github.com/banyan-live/banyan/peer"
)

// initialPath: pion's own ICE names the pair as soon as it connects.
const initialPath = peer.PathDirect

// updatePath reads the selected candidate pair from pion's ICE transport.
func (l *Link) updatePath() {
	sctp := l.pc.SCTP()
	if sctp == nil {
		return
	}
	dtls := sctp.Transport()
	if dtls == nil {
		return
	}
	ice := dtls.ICETransport()
	if ice == nil {
		return
	}
	pair, err := ice.GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local == nil || pair.Remote == nil {
		return
	}
	l.path.Store(pathOf(candidateType(pair.Local.Typ), candidateType(pair.Remote.Typ)))
}

func candidateType(t webrtc.ICECandidateType) string {
	if t == webrtc.ICECandidateTypeUnknown {
		return ""
	}
	return t.String()
}
