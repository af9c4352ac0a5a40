package health

import (
	"strings"
	"testing"
	"time"
)

func TestStalled(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    Input
		state string
		why   string
	}{
		// The case seen in issue 21: two parents, bytes arriving, a busy
		// machine. Not "reconnecting".
		{"two parents, bytes arriving", Input{Parents: 2, SinceBytes: 400 * time.Millisecond}, Buffering, "arriving late (from 2 parents)"},
		{"starved tab", Input{Parents: 2, SinceBytes: 100 * time.Millisecond, TimerLag: 900 * time.Millisecond}, Buffering, "its timers run 900 ms late"},
		{"parents but silent", Input{Parents: 1, SinceBytes: 5 * time.Second}, Buffering, "1 parent connected, no data for 5 s"},
		{"origin only", Input{OriginFed: 2, SinceBytes: 10 * time.Second}, Buffering, "origin"},
		{"every parent lost", Input{SinceBytes: 5 * time.Second}, Reconnecting, "lost every parent"},
		{"never any byte", Input{SinceBytes: -1}, Reconnecting, "lost every parent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, why := Stalled(tc.in)
			if s != tc.state || !strings.Contains(why, tc.why) {
				t.Errorf("got %s %q, want %s containing %q", s, why, tc.state, tc.why)
			}
		})
	}
}
