//go:build js && wasm

// These tests run the browser glue under Node (GOOS=js GOARCH=wasm go test
// with $(go env GOROOT)/lib/wasm on PATH); the browser itself is covered by
// web's end-to-end test in Chromium.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"syscall/js"
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/protocol"
)

func TestFetchBytes(t *testing.T) {
	ctx := context.Background()
	b, err := FetchBytes(ctx, "data:application/octet-stream;base64,AAECAw==")
	if err != nil || string(b) != "\x00\x01\x02\x03" {
		t.Fatalf("FetchBytes: %q %v", b, err)
	}
	if _, err := fetchBytes(ctx, "data:application/octet-stream;base64,AAECAw==", fetchOptions{limit: 3}); err == nil {
		t.Fatal("body over the limit accepted")
	}
	var l liveState
	if err := FetchJSON(ctx, `data:application/json,{"epoch":5,"seq":9,"keyframe_seq":8,"ended":true}`, &l); err != nil || l.Epoch != 5 || l.KeyframeSeq != 8 || !l.Ended {
		t.Fatalf("FetchJSON: %+v %v", l, err)
	}
	if err := FetchJSON(ctx, `data:application/json,{`, &l); err == nil {
		t.Fatal("bad JSON accepted")
	}
	// Nothing listens on port 1: a network error, no HTTP status.
	if _, err := FetchBytes(ctx, "http://127.0.0.1:1/x"); err == nil || statusOf(err) != 0 {
		t.Fatalf("refused connection: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := FetchBytes(cctx, "data:,x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, time.Nanosecond)
	defer tcancel()
	time.Sleep(time.Millisecond)
	if _, err := FetchBytes(tctx, "data:,x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
}

func TestAwaitAndTry(t *testing.T) {
	ctx := context.Background()
	v, err := await(ctx, js.Global().Get("Promise").Call("resolve", 42))
	if err != nil || v.Int() != 42 {
		t.Fatalf("resolve: %v %v", v, err)
	}
	dom := js.Global().Get("DOMException").New("full", "QuotaExceededError")
	_, err = await(ctx, js.Global().Get("Promise").Call("reject", dom))
	if !isJSError(err, "QuotaExceededError") || err.Error() != "QuotaExceededError: full" {
		t.Fatalf("reject: %v", err)
	}
	if _, err := await(ctx, js.ValueOf(1)); err == nil {
		t.Fatal("await of a number")
	}
	never := js.Global().Get("Promise").New(js.FuncOf(func(js.Value, []js.Value) any { return nil }))
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := await(cctx, never); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("never settles: %v", err)
	}
	err = try(func() { js.Global().Get("JSON").Call("parse", "{") })
	if !isJSError(err, "SyntaxError") {
		t.Fatalf("try: %v", err)
	}
	if err := try(func() {}); err != nil {
		t.Fatal(err)
	}
}

// A method or property one browser engine lacks is an error from try, not
// a panic that ends the program.
func TestTryMissingAPI(t *testing.T) {
	obj := js.Global().Get("Object").New()
	tests := []struct {
		name string
		f    func()
	}{
		{"missing method", func() { obj.Call("getSelectedCandidatePair") }},
		{"property of undefined", func() { obj.Get("sctp").Get("transport") }},
		{"call on undefined", func() { obj.Get("sctp").Call("close") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := try(tt.f); !isJSError(err, "MissingAPI") {
				t.Fatalf("try: %v, want a MissingAPI error", err)
			}
		})
	}
	// A bug of ours still panics.
	defer func() {
		if r := recover(); r != "ours" {
			t.Fatalf("recovered %v", r)
		}
	}()
	_ = try(func() { panic("ours") })
}

func TestOriginBases(t *testing.T) {
	o := newOriginClient("demo", "http://a:8080/", "ftp://x", "nonsense", "http://a:8080", "https://b")
	if got := o.url("/chunks/demo/live"); got != "http://a:8080/chunks/demo/live" {
		t.Fatal(got)
	}
	o.failed(&HTTPError{Status: 404}) // an answer: stay
	if got := o.url("/x"); got != "http://a:8080/x" {
		t.Fatal(got)
	}
	o.failed(errors.New("TypeError: Failed to fetch")) // no answer: next base
	if got := o.url("/x"); got != "https://b/x" {
		t.Fatal(got)
	}
	o.failed(errors.New("again"))
	if got := o.url("/x"); got != "http://a:8080/x" {
		t.Fatal(got)
	}
	if got := newOriginClient("demo").url("/x"); got != "/x" {
		t.Fatal(got)
	}
}

func TestBackoff(t *testing.T) {
	for f := 1; f < 20; f++ {
		d := backoff(250*time.Millisecond, f)
		if d < 125*time.Millisecond || d > 8*time.Second {
			t.Fatalf("backoff(%d) = %v", f, d)
		}
	}
}

func TestKeyringOf(t *testing.T) {
	mk, err := chunk.NewMasterKey(9, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(mk)
	var ck protocol.ContentKey
	if err := json.Unmarshal(b, &ck); err != nil {
		t.Fatal(err)
	}
	r, err := keyringOf([]protocol.ContentKey{ck})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := r.Get(9); !ok || !got.Equal(mk) {
		t.Fatal("content key did not round-trip")
	}
	if _, err := keyringOf([]protocol.ContentKey{{ID: 1, Key: "AAAA", Salt: "AAAA"}}); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := parsePublicKey("AAAA"); err == nil {
		t.Fatal("short public key accepted")
	}
}
