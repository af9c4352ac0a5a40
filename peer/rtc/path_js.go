//go:build js

package rtc

import (
	"context"
	"errors"
	"syscall/js"
	"time"

	"github.com/banyan-live/banyan/internal/errs"
	"github.com/banyan-live/banyan/internal/jsawait"
	"github.com/banyan-live/banyan/peer"
)

// initialPath: in the browser the path is read once the link is up, and
// not every browser can tell; until then it is not known.
const initialPath = peer.PathUnknown

// statsTimeout bounds the wait for getStats.
const statsTimeout = 2 * time.Second

// selectedPair asks the browser for the selected candidate pair.
// RTCIceTransport.getSelectedCandidatePair is missing in Firefox (pion's
// js build called it unchecked, and the panic ended the whole program),
// so every step here is feature-checked: that method where it exists
// (Chromium, WebKit), else the selected pair in getStats (Firefox), else
// the path stays "unknown".
func (c *jsConn) selectedPair() (local, remote string, err error) {
	local, remote, err = pairFromICETransport(c.v)
	if err != nil || local == "" {
		local, remote, err = pairFromStats(c.v, statsTimeout)
	}
	return local, remote, err
}

// pairFromICETransport reads pc.sctp.transport.iceTransport's selected
// pair where the browser has getSelectedCandidatePair.
func pairFromICETransport(pc js.Value) (local, remote string, err error) {
	err = catch(func() {
		ice, ok := walk(pc, "sctp", "transport", "iceTransport")
		if !ok || ice.Get("getSelectedCandidatePair").Type() != js.TypeFunction {
			return
		}
		pair := ice.Call("getSelectedCandidatePair")
		local, remote = stringAt(pair, "local", "type"), stringAt(pair, "remote", "type")
	})
	return local, remote, err
}

// pairFromStats finds the selected pair in pc.getStats(), waiting at most
// timeout for the promise.
func pairFromStats(pc js.Value, timeout time.Duration) (local, remote string, err error) {
	var p js.Value
	if err := catch(func() {
		if pc.Get("getStats").Type() == js.TypeFunction {
			p = pc.Call("getStats")
		}
	}); err != nil || p.Type() != js.TypeObject || p.Get("then").Type() != js.TypeFunction {
		return "", "", errors.New("rtc: getStats: " + err.Error())
	}
	report, err := awaitValue(p, timeout)
	if err != nil {
		return "", "", errs.Wrap("rtc: getStats: ", err, "")
	}
	var entries []statEntry
	err = catch(func() {
		if report.Get("values").Type() != js.TypeFunction {
			return
		}
		all := js.Global().Get("Array").Call("from", report.Call("values"))
		for i, n := 0, all.Length(); i < n && i < 1024; i++ {
			s := all.Index(i)
			entries = append(entries, statEntry{
				ID: stringAt(s, "id"), Type: stringAt(s, "type"),
				SelectedPairID: stringAt(s, "selectedCandidatePairId"),
				LocalID:        stringAt(s, "localCandidateId"), RemoteID: stringAt(s, "remoteCandidateId"),
				Selected: boolAt(s, "selected"), Nominated: boolAt(s, "nominated"), State: stringAt(s, "state"),
				CandidateType: stringAt(s, "candidateType"),
			})
		}
	})
	if err != nil {
		return "", "", errs.Wrap("rtc: getStats report: ", err, "")
	}
	local, remote = selectedFromStats(entries)
	return local, remote, nil
}

// awaitValue waits for promise p, at most timeout.
func awaitValue(p js.Value, timeout time.Duration) (js.Value, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	v, err := jsawait.Await(ctx, p)
	if errors.Is(err, context.DeadlineExceeded) {
		return js.Undefined(), errors.New("no answer in " + timeout.String())
	}
	return v, err
}

// walk follows a chain of properties from v, stopping at the first that
// is missing: reading a property of undefined panics in syscall/js.
func walk(v js.Value, names ...string) (js.Value, bool) {
	for _, n := range names {
		if v.Type() != js.TypeObject {
			return js.Undefined(), false
		}
		v = v.Get(n)
	}
	return v, v.Type() == js.TypeObject
}

// stringAt is the string at a chain of properties, or "".
func stringAt(v js.Value, names ...string) string {
	last := len(names) - 1
	o, ok := walk(v, names[:last]...)
	if !ok {
		return ""
	}
	if s := o.Get(names[last]); s.Type() == js.TypeString {
		return s.String()
	}
	return ""
}

// boolAt is the boolean property name of v, false when it is not one.
func boolAt(v js.Value, name string) bool {
	b := v.Get(name)
	return b.Type() == js.TypeBoolean && b.Bool()
}

// catch runs f and turns any panic into an error. Here only: this code
// probes browser objects whose shape differs between engines, and any
// surprise (a getter that throws, a value of another type) must degrade
// the path label, not end the program.
func catch(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("rtc: browser API: " + errs.Text(r))
		}
	}()
	f()
	return nil
}
