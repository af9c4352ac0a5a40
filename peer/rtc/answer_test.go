package rtc

import (
	"testing"
	"time"
)

func TestAnswerClock(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name     string
		answers  []time.Duration // recorded in order; -1 is a missed offer
		wantWait time.Duration
	}{
		{"nothing seen: the floor", nil, 1500 * ms},
		{"fast answers keep the floor", []time.Duration{200 * ms, 300 * ms}, 1500 * ms},
		{"a slow answer: twice it", []time.Duration{200 * ms, 1400 * ms}, 2800 * ms},
		{"capped at the connect timeout", []time.Duration{4 * time.Second}, 5 * time.Second},
		{"a miss doubles", []time.Duration{-1}, 3 * time.Second},
		{"more misses double once only", []time.Duration{-1, -1, -1}, 3 * time.Second},
		{"a slow answer and a miss, capped", []time.Duration{2 * time.Second, -1}, 5 * time.Second},
		{"an answer after misses resets them", []time.Duration{-1, -1, 300 * ms}, 1500 * ms},
		{"the slow answer ages out after eight", []time.Duration{2 * time.Second, 1, 1, 1, 1, 1, 1, 1, 1}, 1500 * ms},
		{"the slow answer is among the last eight", []time.Duration{2 * time.Second, 1, 1, 1, 1, 1, 1, 1}, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAnswerClock(1500*ms, 5*time.Second)
			for _, d := range tt.answers {
				if d < 0 {
					a.Missed()
				} else {
					a.Answered(d)
				}
			}
			if got := a.Wait(); got != tt.wantWait {
				t.Errorf("Wait() = %v, want %v", got, tt.wantWait)
			}
		})
	}
}
