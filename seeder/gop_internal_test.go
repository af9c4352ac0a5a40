package seeder

import (
	"strings"
	"testing"
	"time"
)

// TestGOPWatch: the advice is given once per epoch for an interval over
// LongGOP, measured only between keyframes of one epoch.
func TestGOPWatch(t *testing.T) {
	s := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	var g gopWatch
	for _, step := range []struct {
		name   string
		epoch  uint32
		at     time.Duration
		iv     time.Duration
		advice bool
	}{
		{"first keyframe: nothing measured", 1, 0, 0, false},
		{"1 s GOP", 1, s(1), s(1), false},
		{"2 s: not long", 1, s(3), s(2), false},
		{"8.3 s: advice", 1, s(11.3), s(8.3), true},
		{"again: given once", 1, s(19.6), s(8.3), false},
		{"a new epoch: nothing measured across", 2, s(0.5), 0, false},
		{"new epoch, long: advice again", 2, s(4.5), s(4), true},
		{"time going back: not measured", 2, s(1), 0, false},
	} {
		iv, adv := g.noteKeyframe(step.epoch, step.at)
		if iv != step.iv || (adv != "") != step.advice {
			t.Fatalf("%s: %v %q, want %v advice %v", step.name, iv, adv, step.iv, step.advice)
		}
		if adv != "" && !strings.Contains(adv, KeyframeAdvice) {
			t.Fatalf("%s: advice %q does not say %q", step.name, adv, KeyframeAdvice)
		}
	}
	if got := gopAdvice(s(8.333)); !strings.HasPrefix(got, "keyframe interval 8.3 s") {
		t.Fatalf("advice %q", got)
	}
}
