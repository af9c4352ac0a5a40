//go:build js && wasm

package main

import (
	"context"
	"errors"
	"strconv"
	"syscall/js"
	"time"

	"github.com/banyan-live/banyan/internal/errs"
	"github.com/banyan-live/banyan/internal/jsonwire"
)

// The browser's fetch is the wasm build's only HTTP client: net/http's
// client would add about a megabyte to the download for nothing.

// Fetch bounds.
const (
	// maxFetchBytes bounds a fetched body: the largest sealed chunk.
	maxFetchBytes = 8<<20 + 1024
	// maxJSONBytes bounds a JSON document (the origin's live state).
	maxJSONBytes = 64 << 10
	// defaultFetchTimeout applies when ctx has no earlier deadline. It is
	// longer than the origin's 3 s blocking wait for the next chunk.
	defaultFetchTimeout = 10 * time.Second
)

// HTTPError is a response with a status other than 2xx.
type HTTPError struct {
	URL    string
	Status int
	Text   string // the start of the body, for the message
}

func (e *HTTPError) Error() string {
	return "GET " + e.URL + ": HTTP " + strconv.Itoa(e.Status) + " " + e.Text
}

// statusOf returns the HTTP status of err, or 0 when it is not an
// HTTPError (a network error, a timeout).
func statusOf(err error) int {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}

// fetchOptions tune one request.
type fetchOptions struct {
	limit   int  // body bound (default maxFetchBytes)
	noStore bool // bypass the HTTP cache (live state, not immutable chunks)
	timeout time.Duration
	rng     string // a Range header value; a 206 answer is then accepted
	status  *int   // where to put the answer's status (200 or 206), if not nil
}

// FetchBytes GETs url with the browser's fetch and returns the body. It
// aborts the request (AbortController) when ctx ends or after the default
// timeout, and refuses bodies over maxFetchBytes.
func FetchBytes(ctx context.Context, url string) ([]byte, error) {
	return fetchBytes(ctx, url, fetchOptions{})
}

// jsonValue reads itself from JSON (internal/jsonwire: encoding/json's
// rules without its reflection, which the wasm does not link).
type jsonValue interface {
	readJSON(r *jsonwire.Reader)
}

// FetchJSON GETs url, bypassing the cache, and decodes the JSON body into v.
func FetchJSON(ctx context.Context, url string, v jsonValue) error {
	b, err := fetchBytes(ctx, url, fetchOptions{limit: maxJSONBytes, noStore: true})
	if err != nil {
		return err
	}
	r := jsonwire.NewReader(b)
	v.readJSON(r)
	if err := r.Done(); err != nil {
		return errs.Wrap("GET "+url+": decode JSON: ", err, "")
	}
	return nil
}

func fetchBytes(ctx context.Context, url string, o fetchOptions) ([]byte, error) {
	if o.limit <= 0 {
		o.limit = maxFetchBytes
	}
	if o.timeout <= 0 {
		o.timeout = defaultFetchTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	fetch := js.Global().Get("fetch")
	ac := js.Global().Get("AbortController")
	if fetch.Type() != js.TypeFunction || ac.Type() != js.TypeFunction {
		return nil, errors.New("this browser has no fetch or AbortController")
	}
	ctrl := ac.New()
	stop := context.AfterFunc(ctx, func() { ctrl.Call("abort") })
	defer stop()

	init := map[string]any{
		"signal":      ctrl.Get("signal"),
		"credentials": "omit", // chunks are public ciphertext: no cookies
		"cache":       "default",
	}
	if o.noStore {
		init["cache"] = "no-store"
	}
	if o.rng != "" {
		init["headers"] = map[string]any{"Range": o.rng}
	}
	var p js.Value
	if err := try(func() { p = fetch.Invoke(url, init) }); err != nil {
		return nil, errs.Wrap("GET "+url+": ", err, "")
	}
	resp, err := await(ctx, p)
	if err != nil {
		return nil, fetchErr(ctx, url, err)
	}
	status := resp.Get("status").Int()
	if n := contentLength(resp); n > o.limit {
		ctrl.Call("abort")
		return nil, errors.New("GET " + url + ": body of " + strconv.Itoa(n) + " bytes exceeds " + strconv.Itoa(o.limit))
	}
	if o.status != nil {
		*o.status = status
	}
	if status != 200 && (o.rng == "" || status != 206) {
		he := &HTTPError{URL: url, Status: status}
		if n := contentLength(resp); n >= 0 && n <= 512 {
			if t, err := await(ctx, resp.Call("text")); err == nil {
				he.Text = t.String()
			}
		} else {
			ctrl.Call("abort")
		}
		return nil, he
	}
	buf, err := await(ctx, resp.Call("arrayBuffer"))
	if err != nil {
		return nil, fetchErr(ctx, url, err)
	}
	n := buf.Get("byteLength").Int()
	if n > o.limit {
		return nil, errors.New("GET " + url + ": body of " + strconv.Itoa(n) + " bytes exceeds " + strconv.Itoa(o.limit))
	}
	out := make([]byte, n)
	js.CopyBytesToGo(out, js.Global().Get("Uint8Array").New(buf))
	return out, nil
}

// contentLength is the response's Content-Length, or -1 when absent.
func contentLength(resp js.Value) int {
	v := resp.Get("headers").Call("get", "content-length")
	if v.Type() != js.TypeString {
		return -1
	}
	n := 0
	for _, c := range v.String() {
		if c < '0' || c > '9' || n > 1<<40 {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// fetchErr prefers the context's error to the AbortError it caused.
func fetchErr(ctx context.Context, url string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return errs.Wrap("GET "+url+": ", cerr, "")
	}
	return errs.Wrap("GET "+url+": ", err, "")
}
