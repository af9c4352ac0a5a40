//go:build js

package rtc

import "github.com/pion/webrtc/v4"

// prepareDC asks for ArrayBuffer messages. pion's js build does not set
// binaryType, and engines that still default to "blob" (the older spec)
// would hand every piece through an asynchronous FileReader, one blocked
// goroutine per message. Setting a property is safe in every engine.
func prepareDC(dc *webrtc.DataChannel) {
	_ = catch(func() { dc.JSValue().Set("binaryType", "arraybuffer") })
}
