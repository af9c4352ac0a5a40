package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// WebKit is WebKitGTK's MiniBrowser (the engine of Safari, with WebKit's
// GStreamer-based MSE) under its own Xvfb display, driven by Debian's
// WebKitWebDriver over classic W3C WebDriver (HTTP and JSON). The client
// covers what the tests need: navigate, size the window, evaluate, take
// screenshots. WebKitWebDriver has no log endpoint and the automation
// view does not write console messages anywhere, so a test that must see
// page errors installs a hook with InstallErrorHook and reads it back.
type WebKit struct {
	t       testing.TB
	session string // http://127.0.0.1:PORT/session/ID
	client  *http.Client
}

// MiniBrowserPath finds the MiniBrowser that libwebkit2gtk-4.1 installs in
// its private library directory (it is not on PATH).
func MiniBrowserPath() (string, error) {
	for _, pattern := range []string{"/usr/lib/*/webkit2gtk-4.1/MiniBrowser", "/usr/libexec/webkit2gtk-4.1/MiniBrowser"} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return m[0], nil
		}
	}
	return "", fmt.Errorf("no MiniBrowser under /usr/lib/*/webkit2gtk-4.1")
}

// StartWebKit starts Xvfb, WebKitWebDriver and, through a new session, the
// MiniBrowser in automation mode; the test's cleanup stops them all. A
// missing tool skips the test (fails under BANYAN_E2E=1), like Browser.
// env (KEY=VALUE) is added to the browser's environment.
func StartWebKit(t testing.TB, ctx context.Context, env ...string) *WebKit {
	t.Helper()
	driver := Require(t, "WebKitWebDriver")
	display := StartXvfb(t, ctx)
	mini, err := MiniBrowserPath()
	if err != nil {
		if os.Getenv("BANYAN_E2E") == "1" {
			t.Fatalf("%v but BANYAN_E2E=1: install it (apt-get install webkit2gtk-driver)", err)
		}
		t.Skipf("skipping: %v", err)
	}
	port := FreePort(t)
	cmd := exec.Command(driver, "--port="+strconv.Itoa(port))
	// The driver starts the browser, which starts WebKit's network, web
	// and GPU processes: one process group, so the cleanup ends them all.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), "DISPLAY="+display,
		// Software rendering on the virtual display; no accessibility bus.
		"LIBGL_ALWAYS_SOFTWARE=1", "NO_AT_BRIDGE=1")
	cmd.Env = append(cmd.Env, env...)
	var tail tailBuffer
	cmd.Stdout, cmd.Stderr = lineWriter{&tail}, lineWriter{&tail}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start WebKitWebDriver: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	w := &WebKit{t: t, client: &http.Client{Timeout: 60 * time.Second}}
	root := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var st struct {
			Ready bool `json:"ready"`
		}
		if err := w.do(ctx, "GET", root+"/status", nil, &st); err == nil && st.Ready {
			break
		}
		select {
		case <-exited:
			t.Fatalf("WebKitWebDriver exited:\n%s", tail.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("WebKitWebDriver not ready in 20 s:\n%s", tail.String())
		}
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"webkitgtk:browserOptions": map[string]any{
			"binary": mini,
			"args": []string{"--automation",
				// Safari's policy: autoplay only without sound.
				"--autoplay-policy=allow-without-sound"},
		},
	}}}
	var sess struct {
		SessionID    string `json:"sessionId"`
		Capabilities struct {
			BrowserVersion string `json:"browserVersion"`
		} `json:"capabilities"`
	}
	if err := w.do(ctx, "POST", root+"/session", caps, &sess); err != nil {
		t.Fatalf("WebDriver new session: %v\n%s", err, tail.String())
	}
	w.session = root + "/session/" + sess.SessionID
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.do(dctx, "DELETE", w.session, nil, nil)
	})
	return w
}

// StartXvfb starts a virtual X display for a browser that needs one and
// returns its name (":N"); the test's cleanup stops it.
func StartXvfb(t testing.TB, ctx context.Context) string {
	t.Helper()
	xvfb := Require(t, "Xvfb")
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// -displayfd: Xvfb picks a free display and writes its number.
	cmd := exec.Command(xvfb, "-displayfd", "3", "-screen", "0", "1280x1024x24", "-nolisten", "tcp", "-noreset")
	cmd.ExtraFiles = []*os.File{wr}
	if err := cmd.Start(); err != nil {
		wr.Close()
		t.Fatalf("start Xvfb: %v", err)
	}
	wr.Close()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	num := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, 64))
		num <- strings.TrimSpace(string(b))
	}()
	select {
	case n := <-num:
		if _, err := strconv.Atoi(n); err != nil {
			t.Fatalf("Xvfb did not report its display (%q)", n)
		}
		return ":" + n
	case <-time.After(15 * time.Second):
		t.Fatal("Xvfb did not start in 15 s")
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	return ""
}

// lineWriter feeds a process's output into a tailBuffer line by line.
type lineWriter struct{ b *tailBuffer }

func (l lineWriter) Write(p []byte) (int, error) {
	for _, s := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l.b.add(s)
	}
	return len(p), nil
}

// webDriverError is a WebDriver error reply.
type webDriverError struct {
	Status  int
	Code    string `json:"error"`
	Message string `json:"message"`
}

func (e *webDriverError) Error() string {
	return fmt.Sprintf("webdriver %d %s: %s", e.Status, e.Code, e.Message)
}

// do sends one WebDriver command and decodes the reply's value into out.
func (w *WebKit) do(ctx context.Context, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("webdriver %s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("webdriver %s %s: %w", method, url, err)
	}
	var r struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("webdriver %s %s: reply %.200q: %w", method, url, b, err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &webDriverError{Status: resp.StatusCode}
		_ = json.Unmarshal(r.Value, e)
		return e
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(r.Value, out)
}

// Version is the browser's user agent.
func (w *WebKit) Version(ctx context.Context) string {
	var v string
	_ = w.Eval(ctx, "navigator.userAgent", &v)
	return v
}

// Navigate loads url in the window and waits for its load event.
func (w *WebKit) Navigate(ctx context.Context, url string) error {
	return w.do(ctx, "POST", w.session+"/url", map[string]string{"url": url}, nil)
}

// SetWindowSize sizes the browser window (outer size, in CSS pixels).
func (w *WebKit) SetWindowSize(ctx context.Context, width, height int) error {
	return w.do(ctx, "POST", w.session+"/window/rect", map[string]int{"width": width, "height": height}, nil)
}

// Eval evaluates a JavaScript expression in the page (awaiting it if it is
// a promise) and decodes its JSON form into out (which may be nil). A
// thrown exception is an ErrScript.
func (w *WebKit) Eval(ctx context.Context, expr string, out any) error {
	script := `const done = arguments[arguments.length - 1];
Promise.resolve().then(() => (` + expr + `)).then(
  (v) => done({ok: v === undefined ? "null" : JSON.stringify(v)}),
  (e) => done({err: String((e && e.message) || e)}));`
	var r struct {
		OK  *string `json:"ok"`
		Err *string `json:"err"`
	}
	if err := w.do(ctx, "POST", w.session+"/execute/async", map[string]any{"script": script, "args": []any{}}, &r); err != nil {
		return err
	}
	if r.Err != nil {
		return fmt.Errorf("%w: %s", ErrScript, *r.Err)
	}
	if out == nil || r.OK == nil {
		return nil
	}
	return json.Unmarshal([]byte(*r.OK), out)
}

// Screenshot captures the window's viewport as a PNG.
func (w *WebKit) Screenshot(ctx context.Context) ([]byte, error) {
	var s string
	if err := w.do(ctx, "GET", w.session+"/screenshot", nil, &s); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(s)
}

// errorHookJS records, from the moment it runs, uncaught exceptions,
// unhandled rejections and console errors (and Go's "level=ERROR" or
// panic lines, which wasm_exec.js writes with console.log) in
// window.__e2eErrors.
const errorHookJS = `(() => {
  if (window.__e2eErrors) return true;
  const errs = window.__e2eErrors = [];
  const keep = (s) => { if (errs.length < 200) errs.push(String(s)); };
  addEventListener("error", (e) => keep("uncaught: " + (e.message || e.type)));
  addEventListener("unhandledrejection", (e) => keep("unhandled rejection: " + (e.reason && e.reason.message || e.reason)));
  const error = console.error, log = console.log;
  console.error = (...a) => { keep("console.error: " + a.join(" ")); return error.apply(console, a); };
  console.log = (...a) => {
    const s = a.join(" ");
    if (s.includes("level=ERROR") || s.includes("panic")) keep("console.log: " + s);
    return log.apply(console, a);
  };
  return true;
})()`

// InstallErrorHook starts recording the page's errors (see Errors). It
// must run again after each navigation; errors before it are not seen.
func (w *WebKit) InstallErrorHook(ctx context.Context) error {
	return w.Eval(ctx, errorHookJS, nil)
}

// Errors returns what the hook recorded since it was installed.
func (w *WebKit) Errors(ctx context.Context) ([]string, error) {
	var errs []string
	err := w.Eval(ctx, `window.__e2eErrors || ["the error hook is not installed"]`, &errs)
	return errs, err
}
