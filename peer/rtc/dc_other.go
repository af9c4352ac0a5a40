//go:build !js

package rtc

import "github.com/pion/webrtc/v4"

// prepareDC: pion's own data channels need nothing.
func prepareDC(*webrtc.DataChannel) {}
