//go:build !js

package rtc

import (
	"net"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// LoopbackAPI returns an API whose PeerConnections gather only IPv4 UDP
// host candidates on 127.0.0.1, with mDNS off: tests and single-machine
// benchmarks never touch another address.
func LoopbackAPI() *webrtc.API {
	var se webrtc.SettingEngine
	LoopbackSettings(&se)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// LoopbackSettings restricts a SettingEngine's ICE to 127.0.0.1 over UDP4
// with mDNS off (tests, single-machine demos).
func LoopbackSettings(se *webrtc.SettingEngine) {
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
}
