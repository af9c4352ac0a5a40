package textlog

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestLines(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, false).With("stream", "demo")
	l.Debug("hidden")
	l.Info("joined", "peer", uint64(7), "after", 1500*time.Millisecond)
	l.Error("tracker said no", "err", errors.New("bad token"), "ok", true, "n", 3)
	l.Warn("odd", "dangling")
	l.Info("") // an empty message is quoted, as slog does
	want := `level=INFO msg=joined stream=demo peer=7 after=1.5s
level=ERROR msg="tracker said no" stream=demo err="bad token" ok=true n=3
level=WARN msg=odd stream=demo !BADKEY=dangling
level=INFO msg="" stream=demo
`
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
	buf.Reset()
	New(&buf, true).Debug("shown", "x", "a=b")
	if got := buf.String(); got != "level=DEBUG msg=shown x=\"a=b\"\n" {
		t.Fatalf("debug: %q", got)
	}
}
