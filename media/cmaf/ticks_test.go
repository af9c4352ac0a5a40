package cmaf

import (
	"testing"
	"time"
)

func TestTicks(t *testing.T) {
	for _, tc := range []struct {
		d  time.Duration
		ts uint32
		t  int64
	}{
		{0, 90000, 0},
		{time.Second / 30, 90000, 3000}, // 33333333 ns rounds to the frame
		{time.Second, 48000, 48000},
		{1024 * time.Second / 48000, 48000, 1024}, // 21333333 ns
		{-2 * time.Second / 30, 90000, -6000},
		{30 * 24 * time.Hour, 90000, 30 * 24 * 3600 * 90000},
		{maxAbsTime, 192000, int64(maxAbsTime/time.Second)*192000 + (int64(maxAbsTime%time.Second)*192000+5e8)/1e9},
	} {
		if got := toTicks(tc.d, tc.ts); got != tc.t {
			t.Errorf("toTicks(%v, %d) = %d, want %d", tc.d, tc.ts, got, tc.t)
		}
		// Back to a duration within half a tick.
		back := fromTicks(tc.t, tc.ts)
		if diff := back - tc.d; diff > time.Second/time.Duration(tc.ts) || -diff > time.Second/time.Duration(tc.ts) {
			t.Errorf("fromTicks(%d, %d) = %v, want about %v", tc.t, tc.ts, back, tc.d)
		}
	}
}

func TestClampInt32(t *testing.T) {
	for in, want := range map[int64]int32{0: 0, -5: -5, 1 << 40: 1<<31 - 1, -(1 << 40): -1 << 31} {
		if got := clampInt32(in); got != want {
			t.Errorf("clampInt32(%d) = %d", in, got)
		}
	}
}
