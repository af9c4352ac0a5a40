package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/banyan-live/banyan/seeder"
	"github.com/banyan-live/banyan/store"
	"github.com/banyan-live/banyan/tracker"
)

type keyOptions struct {
	Server string
	Token  string
	Data   string
	RTMP   string
	JSON   bool
	Etcd   etcdOptions // --etcd: a cluster's store, directly
}

func runKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o keyOptions
	c := newCommand("key", "create|list|revoke|rotate [NAME]",
		"Manages stream keys. Talks to the running server at --server with the admin token; when no\n"+
			"server answers it opens the data dir directly. A key is shown once, when it is created.")
	c.String(&o.Server, "server", "http://127.0.0.1:8080", "URL of a running banyan (tracker or up)")
	c.String(&o.Token, "token", "", "admin token (default: read from DATA/admin.token)")
	c.String(&o.Data, "data", "./banyan-data", "data directory, used for the token and when no server answers")
	c.String(&o.RTMP, "rtmp", "rtmp://localhost:1935/live", "RTMP server URL printed with new keys")
	c.Bool(&o.JSON, "json", false, "print exactly one JSON object on stdout")
	o.Etcd.register(c)
	if err := c.parse(interleaveFlags(args), stdout); err != nil {
		return err
	}
	rest := c.fs.Args()
	if len(rest) == 0 {
		return usageError{"banyan key: missing action: create, list, revoke or rotate (see banyan key --help)"}
	}
	action, rest := rest[0], rest[1:]
	wantName := action != "list"
	if wantName && len(rest) != 1 || !wantName && len(rest) != 0 {
		return usageError{fmt.Sprintf("banyan key %s: wrong arguments (see banyan key --help)", action)}
	}
	var name string
	if wantName {
		name = rest[0]
	}
	switch action {
	case "create", "list", "revoke", "rotate":
	default:
		return usageError{fmt.Sprintf("banyan key: unknown action %q: create, list, revoke or rotate", action)}
	}

	b, closeB, err := openKeyBackend(ctx, o)
	if err != nil {
		return err
	}
	defer closeB()
	return runKeyAction(ctx, b, action, name, o, stdout)
}

// openKeyBackend picks where admin actions happen: a cluster's store
// directly (--etcd, roles.go), the server answering at o.Server with the
// admin token, or else the data dir directly.
func openKeyBackend(ctx context.Context, o keyOptions) (keyBackend, func(), error) {
	if o.Etcd.Endpoints != "" {
		st, err := o.Etcd.open("key")
		if err != nil {
			return nil, nil, err
		}
		return storeBackend{st}, func() { st.Close() }, nil
	}
	if serverAnswers(ctx, o.Server) {
		tok := o.Token
		if tok == "" {
			var err error
			if tok, err = store.ReadAdminTokenFile(o.Data); err != nil {
				return nil, nil, fmt.Errorf("a server answers at %s but no admin token was given: pass --token or BANYAN_TOKEN (the server printed it on first start and keeps it in its data dir's admin.token)", o.Server)
			}
		}
		return &apiBackend{base: strings.TrimRight(o.Server, "/"), token: tok}, func() {}, nil
	}
	st, err := store.Open(o.Data, store.Options{LockTimeout: 500 * time.Millisecond})
	if errors.Is(err, store.ErrLocked) {
		return nil, nil, fmt.Errorf("the data dir %s is held by a running banyan, but no server answers at %s: pass --server with that process's HTTP address", o.Data, o.Server)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("no server answers at %s and the data dir cannot be opened: %w", o.Server, err)
	}
	return storeBackend{st}, func() { st.Close() }, nil
}

// interleaveFlags lets flags follow the action and name
// (`banyan key create demo --json`), which Go's flag package stops at.
func interleaveFlags(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			flags = append(flags, a)
			// A flag given as "--name value" takes the next word, except bools.
			if !strings.Contains(a, "=") && !isBoolFlag(a) && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(flags, pos...)
}

func isBoolFlag(a string) bool {
	n := strings.TrimLeft(a, "-")
	return n == "json" || n == "csv" || n == "h" || n == "help"
}

// errExistsHint marks a create refused because the stream exists; it adds
// no text of its own.
var errExistsHint = errors.New("")

func runKeyAction(ctx context.Context, b keyBackend, action, name string, o keyOptions, stdout io.Writer) error {
	switch action {
	case "create", "rotate":
		var cs tracker.CreatedStream
		var err error
		if action == "create" {
			cs, err = b.create(ctx, name)
			if errors.Is(err, store.ErrExists) {
				err = fmt.Errorf("%w%w", err, errExistsHint)
			}
			if errors.Is(err, errExistsHint) {
				return fmt.Errorf("%w (to issue it a new key: banyan key rotate %s)", err, name)
			}
		} else {
			cs, err = b.rotate(ctx, name)
		}
		if err != nil {
			return err
		}
		if o.JSON {
			return writeJSON(stdout, cs)
		}
		fmt.Fprintf(stdout, "Stream %q key (shown once, keep it secret):\n  %s\n\nOBS: Server %s   Stream Key %s   Output: %s\n", cs.Name, cs.Key, o.RTMP, cs.Key, seeder.KeyframeAdvice)
		return nil
	case "revoke":
		info, err := b.revoke(ctx, name)
		if err != nil {
			return err
		}
		if o.JSON {
			return writeJSON(stdout, info)
		}
		fmt.Fprintf(stdout, "Stream %q revoked: its key no longer publishes.\n", info.Name)
		return nil
	default: // list
		list, err := b.list(ctx)
		if err != nil {
			return err
		}
		if o.JSON {
			return writeJSON(stdout, map[string]any{"streams": list})
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTATE\tCREATED\tLAST USED")
		for _, s := range list {
			state := "active"
			switch {
			case s.Revoked:
				state = "revoked"
			case s.Live:
				state = "live"
			}
			last := "never"
			if !s.LastUsed.IsZero() {
				last = s.LastUsed.Local().Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, state, s.CreatedAt.Local().Format(time.DateTime), last)
		}
		return tw.Flush()
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	return enc.Encode(v)
}

// keyBackend is where key actions happen: a running server, or the store.
type keyBackend interface {
	create(ctx context.Context, name string) (tracker.CreatedStream, error)
	rotate(ctx context.Context, name string) (tracker.CreatedStream, error)
	revoke(ctx context.Context, name string) (tracker.StreamInfo, error)
	list(ctx context.Context) ([]tracker.StreamInfo, error)
	setPrivate(ctx context.Context, name string, private bool) (tracker.StreamInfo, error)
	mintToken(ctx context.Context, name string, ttl time.Duration) (tracker.MintedToken, error)
	tokenSecret(ctx context.Context) (string, error)
	rotateAdminToken(ctx context.Context) (string, error)
	audit(ctx context.Context) ([]store.AuditEntry, error)
}

type storeBackend struct{ st store.Backend }

func (b storeBackend) create(_ context.Context, name string) (tracker.CreatedStream, error) {
	s, key, err := b.st.CreateStream(name)
	if err == nil {
		b.record("create", name, "")
	}
	return tracker.CreatedStream{Name: s.Name, Key: key}, err
}

func (b storeBackend) rotate(_ context.Context, name string) (tracker.CreatedStream, error) {
	s, key, err := b.st.RotateKey(name)
	if err == nil {
		b.record("rotate", name, "")
	}
	return tracker.CreatedStream{Name: s.Name, Key: key}, err
}

func (b storeBackend) revoke(_ context.Context, name string) (tracker.StreamInfo, error) {
	s, err := b.st.Revoke(name)
	if err == nil {
		b.record("revoke", name, "")
	}
	return tracker.StreamInfo{Name: s.Name, CreatedAt: s.CreatedAt, LastUsed: s.LastUsed, Revoked: s.Revoked, Private: s.Private}, err
}

func (b storeBackend) list(context.Context) ([]tracker.StreamInfo, error) {
	streams, err := b.st.Streams()
	out := make([]tracker.StreamInfo, 0, len(streams))
	for _, s := range streams {
		out = append(out, tracker.StreamInfo{Name: s.Name, CreatedAt: s.CreatedAt, LastUsed: s.LastUsed, Revoked: s.Revoked, Private: s.Private})
	}
	return out, err
}

type apiBackend struct{ base, token string }

var apiClient = &http.Client{Timeout: 10 * time.Second}

func (b *apiBackend) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := apiClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		msg := resp.Status
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusConflict {
			return fmt.Errorf("server: %s%w", msg, errExistsHint)
		}
		return fmt.Errorf("server: %s", msg)
	}
	return json.Unmarshal(data, out)
}

func (b *apiBackend) create(ctx context.Context, name string) (cs tracker.CreatedStream, err error) {
	err = b.do(ctx, "POST", "/api/streams", map[string]string{"name": name}, &cs)
	return
}

func (b *apiBackend) rotate(ctx context.Context, name string) (cs tracker.CreatedStream, err error) {
	err = b.do(ctx, "POST", "/api/streams/"+name+"/key", nil, &cs)
	return
}

func (b *apiBackend) revoke(ctx context.Context, name string) (si tracker.StreamInfo, err error) {
	err = b.do(ctx, "DELETE", "/api/streams/"+name, nil, &si)
	return
}

func (b *apiBackend) list(ctx context.Context) ([]tracker.StreamInfo, error) {
	var out struct {
		Streams []tracker.StreamInfo `json:"streams"`
	}
	err := b.do(ctx, "GET", "/api/streams", nil, &out)
	return out.Streams, err
}

// serverAnswers reports whether a banyan answers /healthz at base.
func serverAnswers(ctx context.Context, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(base, "/")+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
