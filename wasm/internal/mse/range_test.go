package mse

import (
	"fmt"
	"math"
	"testing"
)

// The wasm logs buffered ranges through String, not fmt: it must print
// what fmt printed for the struct.
func TestRangeStringLikeFmt(t *testing.T) {
	for _, r := range []Range{{}, {1.5, 2}, {-0.25, 1e21}, {3, math.Inf(1)}} {
		if got, want := r.String(), fmt.Sprint(struct{ Start, End float64 }(r)); got != want {
			t.Errorf("%v.String() = %q, fmt says %q", struct{ Start, End float64 }(r), got, want)
		}
	}
}
