//go:build js

package rtc

import "github.com/pion/webrtc/v4"

// defaultAPI is the API of a Transport whose Config.API is nil: in the
// browser the RTCPeerConnection's own ICE, which has no relay wait to tune.
func defaultAPI(bool) *webrtc.API { return webrtc.NewAPI() }
