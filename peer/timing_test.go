package peer

import (
	"testing"
	"time"
)

func TestLiveBase(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	at := func(ms ...int) []time.Time {
		var s []time.Time
		for _, m := range ms {
			s = append(s, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return s
	}
	tests := []struct {
		name    string
		samples []time.Time
		want    int // ms after t0
		ok      bool
	}{
		{"none", nil, 0, false},
		{"one", at(40), 40, true},
		{"two: the later", at(40, 10), 40, true},
		{"sixteen: the 15th smallest", at(0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 300, 900), 300, true},
		{"ten: the 9th", at(90, 80, 70, 60, 50, 40, 30, 20, 10, 0), 80, true},
	}
	for _, tc := range tests {
		got, ok := liveBase(tc.samples)
		if ok != tc.ok || (ok && !got.Equal(t0.Add(time.Duration(tc.want)*time.Millisecond))) {
			t.Errorf("%s: %v %v, want +%d ms %v", tc.name, got.Sub(t0), ok, tc.want, tc.ok)
		}
	}
}

func TestGapLimit(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		gaps  []time.Duration
		floor time.Duration
		want  time.Duration
	}{
		{"too few samples: the floor", []time.Duration{5 * ms, 5 * ms, 5 * ms}, 500 * ms, 500 * ms},
		{"steady small gaps: the floor", []time.Duration{10 * ms, 10 * ms, 10 * ms, 10 * ms, 10 * ms}, 500 * ms, 500 * ms},
		{"long gaps: learned, above the floor", []time.Duration{200 * ms, 220 * ms, 180 * ms, 400 * ms, 200 * ms, 210 * ms}, 100 * ms, 0},
		{"capped", []time.Duration{900 * ms, 100 * ms, 900 * ms, 100 * ms, 900 * ms}, 100 * ms, maxGap},
	}
	for _, tc := range tests {
		var g delayStats
		for _, d := range tc.gaps {
			g.add(d)
		}
		got := g.limit(tc.floor)
		switch {
		case tc.want == 0 && (got <= tc.floor || got >= maxGap):
			t.Errorf("%s: %v, want between floor %v and %v", tc.name, got, tc.floor, maxGap)
		case tc.want != 0 && got != tc.want:
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPlayout(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	s := time.Second
	ms := time.Millisecond
	ample := quietStep + lateMargin // enough slack for a quiet drop
	type step struct {
		at    time.Duration
		event string // stall, late, ontime, clean, repaired, tick
		want  time.Duration
		n     int           // times the event happens (default once)
		slack time.Duration // for clean and repaired (default ample)
	}
	tests := []struct {
		name  string
		low   time.Duration // QuietPlayoutDelay (default: the floor)
		steps []step
	}{
		{"starts at the floor and stays there when calm", 0, []step{
			{at: 0, event: "tick", want: s}, {at: 10 * s, event: "ontime", want: s}, {at: 20 * s, event: "tick", want: s},
		}},
		{"a stall grows it, calm shrinks it slowly back to the floor", 0, []step{
			{at: s, event: "stall", want: s + playoutStall},
			{at: 2 * s, event: "tick", want: s + playoutStall},
			{at: 6 * s, event: "tick", want: s + playoutStall - playoutShrink},
			{at: 8 * s, event: "tick", want: s + playoutStall - playoutShrink},
			{at: 11 * s, event: "tick", want: s + playoutStall - 2*playoutShrink},
			{at: 100 * s, event: "tick", want: s + playoutStall - 3*playoutShrink},
		}},
		{"a near miss grows it a little", 0, []step{{at: s, event: "late", want: s + playoutLate}, {at: 2 * s, event: "ontime", want: s + playoutLate}}},
		{"never past the ceiling", 0, []step{
			{at: s, event: "stall", want: 1250 * ms}, {at: s, event: "stall", want: 1500 * ms}, {at: s, event: "stall", want: 1750 * ms},
			{at: s, event: "stall", want: 2 * s}, {at: s, event: "stall", want: 2 * s},
		}},
		{"a quiet path may go below the floor, to low", 500 * ms, []step{
			{at: s, event: "clean", n: quietChunks - 1, want: s},
			{at: 2 * s, event: "clean", want: s - quietStep},
			{at: 3 * s, event: "clean", n: quietChunks, want: max(s-2*quietStep, 500*ms)},
			{at: 4 * s, event: "clean", n: quietChunks, want: 500 * ms},
			{at: 20 * s, event: "tick", want: 500 * ms}, // calm does not raise it
		}},
		{"quiet but not the option: the floor holds", 0, []step{
			{at: s, event: "clean", n: 3 * quietChunks, want: s},
		}},
		{"slack too thin for a drop", 500 * ms, []step{
			{at: s, event: "clean", n: quietChunks - 1, want: s},
			{at: s, event: "clean", slack: ample - ms, want: s},
		}},
		{"a repaired chunk ends the run", 500 * ms, []step{
			{at: s, event: "clean", n: quietChunks - 1, want: s},
			{at: s, event: "repaired", want: s},
			{at: s, event: "clean", n: quietChunks - 1, want: s},
			{at: s, event: "clean", want: s - quietStep},
		}},
		{"a stall ends the run", 500 * ms, []step{
			{at: s, event: "clean", n: quietChunks - 1, want: s},
			{at: s, event: "stall", want: s + playoutStall},
			{at: s, event: "clean", want: s + playoutStall},
		}},
		{"a repair below the floor brings the floor back", 500 * ms, []step{
			{at: s, event: "clean", n: quietChunks, want: s - quietStep},
			{at: 2 * s, event: "repaired", want: s},
		}},
		{"a near miss below the floor grows it a little", 500 * ms, []step{
			{at: s, event: "clean", n: quietChunks, want: s - quietStep},
			{at: 2 * s, event: "late", want: s - quietStep + playoutLate},
			{at: 20 * s, event: "tick", want: s - quietStep + playoutLate},
		}},
	}
	for _, tc := range tests {
		low := tc.low
		if low == 0 {
			low = s
		}
		p := newPlayout(s, low, 2*s, t0)
		for i, st := range tc.steps {
			now := t0.Add(st.at)
			slack := st.slack
			if slack == 0 {
				slack = ample
			}
			for range max(st.n, 1) {
				switch st.event {
				case "stall":
					p.stalled(now)
				case "late":
					p.arrived(now, lateMargin/2, true)
				case "ontime":
					p.arrived(now, 2*lateMargin, true)
				case "clean":
					p.arrived(now, slack, true)
				case "repaired":
					p.arrived(now, slack, false)
				case "tick":
					p.tick(now)
				}
			}
			if p.target != st.want {
				t.Errorf("%s: step %d (%s at %v): target %v, want %v", tc.name, i, st.event, st.at, p.target, st.want)
			}
		}
	}
}

func TestPlayClock(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	// Each step: at `now` (ms), follow goal (ms) or delay by `delay` ms;
	// want the base (ms) after it.
	steps := []struct {
		name       string
		now, goal  int
		delay      int
		wantBase   int
		usesFollow bool
	}{
		{"first goal sets the base", 0, 1000, 0, 1000, true},
		{"goal 1 s earlier: catch up at 0.15 s/s", 1000, 0, 0, 850, true},
		{"another second", 2000, 0, 0, 700, true},
		{"goal reached, no overshoot", 10000, 0, 0, 0, true},
		{"goal 1 s later: slow down at 0.05 s/s", 11000, 1000, 0, 50, true},
		{"ten seconds on", 21000, 1000, 0, 550, true},
		{"a stall waits at once", 21000, 0, 250, 800, false},
		{"goal below again", 22000, 700, 0, 700, true},
	}
	var c playClock
	for _, s := range steps {
		if s.usesFollow {
			c.follow(ms(s.now), ms(s.goal))
		} else {
			c.delay(time.Duration(s.delay) * time.Millisecond)
		}
		if got := c.base.Sub(t0); got != time.Duration(s.wantBase)*time.Millisecond {
			t.Fatalf("%s: base %v, want %d ms", s.name, got, s.wantBase)
		}
	}
	c.reset()
	if c.delay(time.Second); c.set {
		t.Fatal("delay on an unset clock set it")
	}
}

func TestOriginLead(t *testing.T) {
	const ms = time.Millisecond
	const def = 400 * ms
	tests := []struct {
		name    string
		fetches []time.Duration
		lo, hi  time.Duration // want lo ≤ lead ≤ hi
	}{
		{"untimed: the configured lead", []time.Duration{80 * ms, 80 * ms, 80 * ms}, def, def},
		{"a close origin: a short lead", []time.Duration{80 * ms, 80 * ms, 80 * ms, 80 * ms}, 80*ms + originSlack, 250 * ms},
		{"a fast origin: the floor", []time.Duration{10 * ms, 10 * ms, 10 * ms, 10 * ms}, minOriginLead, minOriginLead},
		{"a distant origin: a long lead", []time.Duration{600 * ms, 650 * ms, 600 * ms, 620 * ms}, 650*ms + originSlack, maxOriginLead - ms},
		{"a very slow origin: capped", []time.Duration{3 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second}, maxOriginLead, maxOriginLead},
	}
	for _, tc := range tests {
		var d delayStats
		for _, f := range tc.fetches {
			d.add(f)
		}
		if got := originLead(&d, def); got < tc.lo || got > tc.hi {
			t.Errorf("%s: %v, want %v–%v", tc.name, got, tc.lo, tc.hi)
		}
	}
}

// TestPlayoutHeld: below the floor on a quiet path, the engine still holds
// media for others as long as the floor says (children's queues).
func TestPlayoutHeld(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	p := newPlayout(time.Second, 500*time.Millisecond, 3*time.Second, t0)
	for range quietChunks {
		p.arrived(t0, time.Second, true)
	}
	if p.target >= time.Second || p.held() != time.Second {
		t.Fatalf("target %v held %v, want below 1s and 1s", p.target, p.held())
	}
	p.stalled(t0)
	p.stalled(t0)
	p.stalled(t0)
	if p.held() != p.target || p.target <= time.Second {
		t.Fatalf("target %v held %v, want the grown target", p.target, p.held())
	}
}

func TestProbe(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	const after, wait = 1000 * time.Millisecond, 300 * time.Millisecond
	type step struct {
		now      int // ms
		answered int // ms of the last answered ping's send time; -1: none
		want     probeAction
	}
	tests := []struct {
		name  string
		last  int // last delivery, ms
		steps []step
	}{
		{"a delivering parent is left alone", 0, []step{
			{999, -1, probeIdle},
		}},
		{"a dead parent: two pings unanswered, then reported", 0, []step{
			{1000, -1, probePing},
			{1200, -1, probeIdle},
			{1300, -1, probePing},
			{1500, -1, probeIdle},
			{1600, -1, probeDead},
			{1700, -1, probeDead},
		}},
		{"an answer to the first ping: starved, not gone", 0, []step{
			{1000, -1, probePing},
			{1100, 1000, probeIdle},
			{1400, 1000, probeIdle},
			{2900, 1000, probeIdle},
		}},
		{"an answer to the second ping saves it", 0, []step{
			{1000, -1, probePing},
			{1300, -1, probePing},
			{1500, 1300, probeIdle},
			{1700, 1300, probeIdle},
		}},
		{"an answer to a ping sent before the probe does not count", 0, []step{
			{1000, 900, probePing},
			{1300, 900, probePing},
			{1600, 900, probeDead},
		}},
	}
	for _, tc := range tests {
		var p probe
		for i, st := range tc.steps {
			var ans time.Time
			if st.answered >= 0 {
				ans = ms(st.answered)
			}
			if got := p.step(ms(st.now), ms(tc.last), ans, after, wait); got != st.want {
				t.Errorf("%s: step %d at %d ms: %v, want %v", tc.name, i, st.now, got, st.want)
			}
		}
	}
	// A delivery ends the probe: the next quiet spell starts from scratch.
	var p probe
	p.step(ms(1000), ms(0), time.Time{}, after, wait)
	p.step(ms(1300), ms(0), time.Time{}, after, wait)
	if got := p.step(ms(1400), ms(1350), time.Time{}, after, wait); got != probeIdle || p.pings != 0 {
		t.Errorf("after a delivery: %v with %d pings, want idle with 0", got, p.pings)
	}
	if got := p.step(ms(2400), ms(1350), time.Time{}, after, wait); got != probePing {
		t.Errorf("quiet again: %v, want a ping", got)
	}
}

func TestProbeBounds(t *testing.T) {
	const silent = 3 * time.Second
	learned := func(gaps ...time.Duration) *delayStats {
		var d delayStats
		for _, g := range gaps {
			d.add(g)
		}
		return &d
	}
	ms := time.Millisecond
	for _, tc := range []struct {
		name    string
		credits *delayStats
		want    time.Duration
	}{
		{"unlearned: half of SilentAfter", learned(), silent / 2},
		{"few samples: still unlearned", learned(250*ms, 250*ms, 250*ms), silent / 2},
		{"steady quarter seconds: the floor", learned(250*ms, 250*ms, 250*ms, 250*ms, 250*ms), minProbeAfter},
		{"a 600 ms cadence: its high", learned(600*ms, 600*ms, 600*ms, 600*ms, 600*ms, 600*ms), 0},
		{"erratic: capped at half of SilentAfter", learned(200*ms, 3000*ms, 100*ms, 2500*ms), silent / 2},
	} {
		got := probeAfter(tc.credits, silent)
		want := tc.want
		if want == 0 {
			h, _ := tc.credits.high()
			want = h
			if h <= minProbeAfter || h >= silent/2 {
				t.Fatalf("%s: high %v is not between the bounds", tc.name, h)
			}
		}
		if got != want {
			t.Errorf("%s: probeAfter %v, want %v", tc.name, got, want)
		}
	}
	for _, tc := range []struct {
		rtt   time.Duration
		known bool
		want  time.Duration
	}{
		{0, false, defProbeWait},
		{10 * ms, true, minProbeWait},
		{200 * ms, true, 400 * ms},
		{time.Second, true, maxProbeWait},
	} {
		if got := probeWait(tc.rtt, tc.known); got != tc.want {
			t.Errorf("probeWait(%v, %v) = %v, want %v", tc.rtt, tc.known, got, tc.want)
		}
	}
}

// Outstanding repair requests at one neighbour are bounded in media time,
// so that shorter chunks do not shrink what a catch-up has in flight.
func TestMaxAsks(t *testing.T) {
	for _, tc := range []struct {
		avg  time.Duration
		want int
	}{
		{0, 2},                      // nothing learned yet
		{250 * time.Millisecond, 2}, // the bound it replaced
		{125 * time.Millisecond, 4}, // a 125 ms chunk
		{133 * time.Millisecond, 4}, // 4 frames at 30 fps: 532 ms
		{100 * time.Millisecond, 5}, //
		{2 * time.Second, 2},        // never fewer than two
		{10 * time.Millisecond, 8},  // nor more than eight
	} {
		if got := maxAsks(tc.avg); got != tc.want {
			t.Errorf("maxAsks(%v) = %d, want %d", tc.avg, got, tc.want)
		}
	}
}
