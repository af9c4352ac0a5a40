package guard

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestRun(t *testing.T) {
	var nilMap map[string]int
	tests := []struct {
		name      string
		f         func()
		wantPanic bool
		wantMsg   string
		runtime   bool // the value is a runtime.Error
	}{
		{name: "no panic", f: func() {}},
		{name: "string", f: func() { panic("boom") }, wantPanic: true, wantMsg: "panic in where: boom"},
		{name: "error value", f: func() { panic(errors.New("bad")) }, wantPanic: true, wantMsg: "panic in where: bad"},
		{name: "nil map write", f: func() { nilMap["x"] = 1 }, wantPanic: true, wantMsg: "assignment to entry in nil map", runtime: true},
		{name: "panic(nil)", f: func() { panic(nil) }, wantPanic: true, wantMsg: "panic called with nil argument", runtime: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []*PanicError
			g := New(func(pe *PanicError) { got = append(got, pe) })
			err := g.Run("where", tt.f)
			if !tt.wantPanic {
				if err != nil || len(got) != 0 || g.Panics() != 0 {
					t.Fatalf("err %v, reported %d, counted %d", err, len(got), g.Panics())
				}
				return
			}
			var pe *PanicError
			if !errors.As(err, &pe) || pe.Where != "where" || !strings.Contains(pe.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want a PanicError with %q", err, tt.wantMsg)
			}
			if len(got) != 1 || got[0] != pe || g.Panics() != 1 {
				t.Fatalf("reported %d, counted %d", len(got), g.Panics())
			}
			if !strings.Contains(string(pe.Stack), "guard_test.go") {
				t.Fatalf("stack does not show where it panicked:\n%s", pe.Stack)
			}
			var re runtime.Error
			if errors.As(err, &re) != tt.runtime {
				t.Fatalf("errors.As runtime.Error = %v, want %v", !tt.runtime, tt.runtime)
			}
		})
	}
}

func TestGoAndFunc(t *testing.T) {
	var mu sync.Mutex
	var where []string
	done := make(chan struct{}, 2)
	g := New(func(pe *PanicError) {
		mu.Lock()
		where = append(where, pe.Where)
		mu.Unlock()
		done <- struct{}{}
	})
	g.Go("goroutine", func() { panic("in a goroutine") })
	cb := g.Func("callback", func() { panic("in a callback") })
	go cb()
	<-done
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(where) != 2 || g.Panics() != 2 {
		t.Fatalf("reported %v, counted %d", where, g.Panics())
	}
}

// A nil Guard does not recover: native processes keep crashing loudly.
func TestNilGuardDoesNotRecover(t *testing.T) {
	var g *Guard
	if g.Panics() != 0 {
		t.Fatal("nil guard counted a panic")
	}
	ran := false
	g.Func("f", func() { ran = true })()
	if !ran {
		t.Fatal("nil guard's Func did not call f")
	}
	defer func() {
		if r := recover(); r != "through" {
			t.Fatalf("recovered %v, want the panic to pass through", r)
		}
	}()
	_ = g.Run("f", func() { panic("through") })
	t.Fatal("Run returned")
}
