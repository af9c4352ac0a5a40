package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Firefox is headless Firefox (Debian's firefox-esr) driven over WebDriver
// BiDi, the W3C protocol Firefox speaks on --remote-debugging-port. This
// small client covers what the tests need (navigate, evaluate, console and
// error log, screenshots) so that no geckodriver (not in Debian) or npm
// package is needed at test time.
type Firefox struct {
	t       testing.TB
	cmd     *exec.Cmd
	conn    *websocket.Conn
	context string // the top-level browsing context the tests drive

	mu      sync.Mutex
	next    int
	pending map[int]chan bidiReply
	logs    []LogEntry
	readErr error
	done    chan struct{}
}

// LogEntry is one log.entryAdded event: a console message (Type
// "console") or an uncaught exception (Type "javascript").
type LogEntry struct {
	Type  string `json:"type"`
	Level string `json:"level"`
	Text  string `json:"text"`
}

func (l LogEntry) String() string { return l.Type + "/" + l.Level + ": " + l.Text }

type bidiReply struct {
	Type    string          `json:"type"`
	ID      *int            `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

// firefoxPrefs are written to the fresh profile's user.js.
var firefoxPrefs = map[string]any{
	// WebRTC between the page and peers on this machine only: loopback
	// candidates, and real addresses instead of mDNS names.
	"media.peerconnection.ice.loopback":                 true,
	"media.peerconnection.ice.obfuscate_host_addresses": false,
	// Autoplay as a test needs it (the page mutes anyway).
	"media.autoplay.default":         0,
	"media.autoplay.blocking_policy": 0,
	// No first-run pages, telemetry or update checks.
	"browser.shell.checkDefaultBrowser":                          false,
	"browser.aboutwelcome.enabled":                               false,
	"datareporting.policy.dataSubmissionEnabled":                 false,
	"toolkit.telemetry.reportingpolicy.firstRun":                 false,
	"app.update.disabledForTesting":                              true,
	"network.captive-portal-service.enabled":                     false,
	"network.connectivity-service.enabled":                       false,
	"messaging-system.rsexperimentloader.enabled":                false,
	"browser.safebrowsing.update.enabled":                        false,
	"extensions.update.enabled":                                  false,
	"browser.newtabpage.activity-stream.feeds.system.topstories": false,
}

var bidiListening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// StartFirefox starts headless firefox-esr with a fresh profile and opens
// a BiDi session on its first tab; the test's cleanup stops it. Like
// Browser, a missing firefox-esr skips the test (fails under BANYAN_E2E=1).
func StartFirefox(t testing.TB, ctx context.Context) *Firefox {
	t.Helper()
	path := Require(t, "firefox-esr")
	profile := t.TempDir()
	var js strings.Builder
	for k, v := range firefoxPrefs {
		b, _ := json.Marshal(v)
		fmt.Fprintf(&js, "user_pref(%q, %s);\n", k, b)
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(js.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, "--headless", "--remote-debugging-port=0", "--no-remote", "-profile", profile, "about:blank")
	// Firefox runs content processes of its own: its own process group, so
	// the cleanup ends them all.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), "MOZ_CRASHREPORTER_DISABLE=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start firefox: %v", err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	urls := make(chan string, 1)
	var tail tailBuffer
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			tail.add(line)
			if m := bidiListening.FindStringSubmatch(line); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	var wsURL string
	select {
	case wsURL = <-urls:
	case <-exited:
		t.Fatalf("firefox exited before listening:\n%s", tail.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("firefox did not start its BiDi server in 30 s:\n%s", tail.String())
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, strings.TrimSuffix(wsURL, "/")+"/session", nil)
	if err != nil {
		t.Fatalf("connect to firefox's BiDi: %v", err)
	}
	conn.SetReadLimit(64 << 20) // screenshots
	f := &Firefox{t: t, cmd: cmd, conn: conn, pending: map[int]chan bidiReply{}, done: make(chan struct{})}
	go f.read()
	t.Cleanup(func() { _ = conn.CloseNow(); <-f.done })

	if _, err := f.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}}); err != nil {
		t.Fatalf("BiDi session.new: %v", err)
	}
	if _, err := f.call(ctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}); err != nil {
		t.Fatalf("BiDi session.subscribe: %v", err)
	}
	tree, err := f.call(ctx, "browsingContext.getTree", map[string]any{})
	if err != nil {
		t.Fatalf("BiDi browsingContext.getTree: %v", err)
	}
	var tr struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	if err := json.Unmarshal(tree, &tr); err != nil || len(tr.Contexts) == 0 {
		t.Fatalf("BiDi: no browsing context (%v): %s", err, tree)
	}
	f.context = tr.Contexts[0].Context
	return f
}

// Version is the browser's version, as the BiDi session reports it.
func (f *Firefox) Version(ctx context.Context) string {
	var v string
	_ = f.Eval(ctx, "navigator.userAgent", &v)
	return v
}

// read dispatches replies to their callers and keeps log events.
func (f *Firefox) read() {
	defer close(f.done)
	for {
		_, b, err := f.conn.Read(context.Background())
		if err != nil {
			f.mu.Lock()
			f.readErr = err
			for id, ch := range f.pending {
				close(ch)
				delete(f.pending, id)
			}
			f.mu.Unlock()
			return
		}
		var r bidiReply
		if json.Unmarshal(b, &r) != nil {
			continue
		}
		if r.Type == "event" {
			if r.Method == "log.entryAdded" {
				var e LogEntry
				if json.Unmarshal(r.Params, &e) == nil {
					f.mu.Lock()
					if len(f.logs) < 2000 {
						f.logs = append(f.logs, e)
					}
					f.mu.Unlock()
				}
			}
			continue
		}
		if r.ID == nil {
			continue
		}
		f.mu.Lock()
		ch := f.pending[*r.ID]
		delete(f.pending, *r.ID)
		f.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
}

// call sends one BiDi command and waits for its result.
func (f *Firefox) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	f.mu.Lock()
	if f.readErr != nil {
		f.mu.Unlock()
		return nil, fmt.Errorf("bidi %s: connection lost: %w", method, f.readErr)
	}
	f.next++
	id := f.next
	ch := make(chan bidiReply, 1)
	f.pending[id] = ch
	f.mu.Unlock()
	b, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	if err := f.conn.Write(ctx, websocket.MessageText, b); err != nil {
		return nil, fmt.Errorf("bidi %s: %w", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("bidi %s: connection lost", method)
		}
		if r.Type == "error" {
			return nil, fmt.Errorf("bidi %s: %s: %s", method, r.Error, r.Message)
		}
		return r.Result, nil
	case <-ctx.Done():
		f.mu.Lock()
		delete(f.pending, id)
		f.mu.Unlock()
		return nil, fmt.Errorf("bidi %s: %w", method, ctx.Err())
	}
}

// Navigate loads url in the tab and waits for its load event.
func (f *Firefox) Navigate(ctx context.Context, url string) error {
	_, err := f.call(ctx, "browsingContext.navigate", map[string]any{"context": f.context, "url": url, "wait": "complete"})
	return err
}

// SetViewport sizes the tab's viewport in CSS pixels.
func (f *Firefox) SetViewport(ctx context.Context, width, height int) error {
	_, err := f.call(ctx, "browsingContext.setViewport", map[string]any{
		"context": f.context, "viewport": map[string]int{"width": width, "height": height},
	})
	return err
}

// ErrScript is a JavaScript exception thrown by an evaluated expression.
var ErrScript = errors.New("script exception")

// Eval evaluates a JavaScript expression in the page (awaiting it if it is
// a promise) and decodes its JSON form into out (which may be nil).
func (f *Firefox) Eval(ctx context.Context, expr string, out any) error {
	res, err := f.call(ctx, "script.evaluate", map[string]any{
		"expression":      "(async () => JSON.stringify(await (" + expr + ")))()",
		"target":          map[string]string{"context": f.context},
		"awaitPromise":    true,
		"resultOwnership": "none",
	})
	if err != nil {
		return err
	}
	var r struct {
		Type   string `json:"type"`
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return fmt.Errorf("bidi evaluate: %w", err)
	}
	if r.Type == "exception" {
		return fmt.Errorf("%w: %s", ErrScript, r.ExceptionDetails.Text)
	}
	if out == nil || r.Result.Type == "undefined" {
		return nil
	}
	var s string
	if err := json.Unmarshal(r.Result.Value, &s); err != nil {
		return fmt.Errorf("bidi evaluate: result %s: %w", r.Result.Value, err)
	}
	return json.Unmarshal([]byte(s), out)
}

// Screenshot captures the tab's viewport as a PNG.
func (f *Firefox) Screenshot(ctx context.Context) ([]byte, error) {
	res, err := f.call(ctx, "browsingContext.captureScreenshot", map[string]any{"context": f.context})
	if err != nil {
		return nil, err
	}
	var r struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}

// Logs returns the console messages and uncaught exceptions so far.
func (f *Firefox) Logs() []LogEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]LogEntry(nil), f.logs...)
}

// tailBuffer keeps the last lines a process printed, for failure messages.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *tailBuffer) add(l string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, l)
	if len(b.lines) > 40 {
		b.lines = b.lines[len(b.lines)-40:]
	}
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}
