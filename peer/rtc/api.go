//go:build !js

package rtc

import "github.com/pion/webrtc/v4"

// defaultAPI is the API of a Transport whose Config.API is nil.
func defaultAPI(relayOnly bool) *webrtc.API {
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
