//go:build js && wasm

package main

import (
	"time"

	"github.com/banyan-live/banyan/protocol"
)

// signalHold keeps the tracker's WebRTC signaling (offers, answers,
// candidates) back while a new session's viewer starts playback from the
// origin. The wasm runs on the page's main thread, and answering a
// parent's offer there (the browser's RTCPeerConnection, descriptions,
// answer) blocked it for 150–480 ms in Chromium right when the live edge
// and the first chunks came back from the origin: the join timeline showed
// the answers done in the browser 100–400 ms before the viewer could read
// them. The link comes up that much later instead (the origin feeds the
// stripes meanwhile, as it does until any link is open); Firefox answers
// in ~20 ms and loses nothing to the wait but the link's start.
type signalHold struct {
	on    bool
	until time.Time // when the first held message must go at the latest (zero: none held)
	held  []protocol.Message
}

// holdMax bounds the hold from the first held message: a dialer waits at
// least rtc.Config.AnswerTimeout (1.5 s) for the answer, which itself may
// take half a second in a loaded Chromium.
const holdMax = 500 * time.Millisecond

// start holds again (a new session, whose engine starts over).
func (h *signalHold) start() { *h = signalHold{on: true} }

// hold keeps m if it is signaling and the hold is on; it reports whether
// it did.
func (h *signalHold) hold(m protocol.Message, now time.Time) bool {
	if _, ok := m.(protocol.Signal); !ok || !h.on {
		return false
	}
	if len(h.held) == 0 {
		h.until = now.Add(holdMax)
	}
	h.held = append(h.held, m)
	return true
}

// release ends the hold once playback has started or the first held
// message has waited holdMax, and returns what was held, in order.
func (h *signalHold) release(now time.Time, started bool) []protocol.Message {
	if !h.on || (!started && (len(h.held) == 0 || now.Before(h.until))) {
		return nil
	}
	held := h.held
	*h = signalHold{}
	return held
}
