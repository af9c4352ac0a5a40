package main

// `banyan stream`, `banyan token` and `banyan admin`: private streams,
// viewer tokens, the admin token's rotation and the audit log. Like
// `banyan key` they talk to the running server, or to the data dir when
// none answers.

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/banyan-live/banyan/store"
	"github.com/banyan-live/banyan/tracker"
	"github.com/banyan-live/banyan/viewertoken"
)

// adminCommand parses the flags every admin command shares and returns
// the positional arguments.
func adminCommand(name, usage, doc string, o *keyOptions, extra func(c *command), args []string, stdout io.Writer) ([]string, error) {
	c := newCommand(name, usage, doc)
	c.String(&o.Server, "server", "http://127.0.0.1:8080", "URL of a running banyan (tracker or up)")
	c.String(&o.Token, "token", "", "admin token (default: read from DATA/admin.token)")
	c.String(&o.Data, "data", "./banyan-data", "data directory, used for the token and when no server answers")
	c.Bool(&o.JSON, "json", false, "print exactly one JSON object on stdout")
	if extra != nil {
		extra(c)
	}
	if err := c.parse(interleaveFlags(args), stdout); err != nil {
		return nil, err
	}
	return c.fs.Args(), nil
}

func runStream(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o keyOptions
	rest, err := adminCommand("stream", "private NAME on|off",
		"Sets whether a stream is private. A private stream admits only viewers with a viewer token\n"+
			"(banyan token mint) and serves no clear LL-HLS; the change applies at once, live or not.\n"+
			"Viewers already watching keep watching until they leave.", &o, nil, args, stdout)
	if err != nil {
		return err
	}
	if len(rest) != 3 || rest[0] != "private" || (rest[2] != "on" && rest[2] != "off") {
		return usageError{"banyan stream: usage: banyan stream private NAME on|off"}
	}
	b, closeB, err := openKeyBackend(ctx, o)
	if err != nil {
		return err
	}
	defer closeB()
	info, err := b.setPrivate(ctx, rest[1], rest[2] == "on")
	if err != nil {
		return err
	}
	if o.JSON {
		return writeJSON(stdout, info)
	}
	if info.Private {
		fmt.Fprintf(stdout, "Stream %q is private: viewers need a token (banyan token mint %s), no clear LL-HLS.\n", info.Name, info.Name)
	} else {
		fmt.Fprintf(stdout, "Stream %q is public.\n", info.Name)
	}
	return nil
}

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o keyOptions
	var ttl time.Duration
	rest, err := adminCommand("token", "mint NAME [--ttl D] | secret",
		"mint: prints a viewer token for a private stream, valid for --ttl (at most 30 days).\n"+
			"secret: prints the viewer-token secret (base64url) for a site that mints its own tokens\n"+
			"(see docs/viewer-tokens.md). Keep it as secret as the admin token.", &o,
		func(c *command) {
			c.Duration(&ttl, "ttl", tracker.DefaultTokenTTL, "how long a minted token admits viewers")
		}, args, stdout)
	if err != nil {
		return err
	}
	switch {
	case len(rest) == 2 && rest[0] == "mint":
		if ttl < time.Second || ttl > tracker.MaxTokenTTL {
			return usageError{fmt.Sprintf("banyan token: --ttl must be 1s to %s", tracker.MaxTokenTTL)}
		}
	case len(rest) == 1 && rest[0] == "secret":
	default:
		return usageError{"banyan token: usage: banyan token mint NAME [--ttl 1h] | banyan token secret"}
	}
	b, closeB, err := openKeyBackend(ctx, o)
	if err != nil {
		return err
	}
	defer closeB()
	if rest[0] == "secret" {
		secret, err := b.tokenSecret(ctx)
		if err != nil {
			return err
		}
		if o.JSON {
			return writeJSON(stdout, map[string]string{"secret_base64url": secret})
		}
		fmt.Fprintln(stdout, secret)
		return nil
	}
	mt, err := b.mintToken(ctx, rest[1], ttl)
	if err != nil {
		return err
	}
	if o.JSON {
		return writeJSON(stdout, mt)
	}
	fmt.Fprintf(stdout, "Viewer token for %q, valid until %s:\n  %s\n\nPlayer: <banyan-player stream=%q token=%q></banyan-player>\nNative: banyan peer --stream %s --token %s\n",
		mt.Stream, mt.ExpiresAt.Local().Format(time.DateTime), mt.Token, mt.Stream, mt.Token, mt.Stream, mt.Token)
	return nil
}

func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o keyOptions
	rest, err := adminCommand("admin", "rotate-token | audit",
		"rotate-token: replaces the admin token. The old one and every dashboard session stop\n"+
			"working at once; the new one is printed once and written to DATA/admin.token.\n"+
			"audit: prints the audit log of admin actions, newest first.", &o, nil, args, stdout)
	if err != nil {
		return err
	}
	if len(rest) != 1 || (rest[0] != "rotate-token" && rest[0] != "audit") {
		return usageError{"banyan admin: usage: banyan admin rotate-token | banyan admin audit"}
	}
	b, closeB, err := openKeyBackend(ctx, o)
	if err != nil {
		return err
	}
	defer closeB()
	if rest[0] == "rotate-token" {
		tok, err := b.rotateAdminToken(ctx)
		if err != nil {
			return err
		}
		if o.JSON {
			return writeJSON(stdout, map[string]string{"token": tok})
		}
		fmt.Fprintf(stdout, "New admin token (shown once; also in %s/admin.token on the server):\n  %s\n", o.Data, tok)
		return nil
	}
	entries, err := b.audit(ctx)
	if err != nil {
		return err
	}
	if o.JSON {
		return writeJSON(stdout, map[string]any{"entries": entries})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tSTREAM\tVIA\tFROM\tDETAIL")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format(time.DateTime), e.Action, e.Stream, e.Via, e.Remote, e.Detail)
	}
	return tw.Flush()
}

// The offline (data dir) side of these actions.

func (b storeBackend) record(action, stream, detail string) {
	// Offline there is no logger: a failed audit write fails the command
	// only if the action itself also failed, which the caller reports.
	_, _ = b.st.AppendAudit(store.AuditEntry{Action: action, Stream: stream, Via: "cli", Detail: detail})
}

func (b storeBackend) setPrivate(_ context.Context, name string, private bool) (tracker.StreamInfo, error) {
	s, err := b.st.Stream(name)
	if err == nil && s.Revoked {
		err = fmt.Errorf("stream %q: %w", name, store.ErrNotFound)
	}
	if err == nil {
		err = b.st.SetPrivate(name, private)
	}
	if err != nil {
		return tracker.StreamInfo{}, err
	}
	b.record(map[bool]string{true: "private_on", false: "private_off"}[private], name, "")
	return tracker.StreamInfo{Name: s.Name, CreatedAt: s.CreatedAt, LastUsed: s.LastUsed, Private: private}, nil
}

func (b storeBackend) mintToken(_ context.Context, name string, ttl time.Duration) (tracker.MintedToken, error) {
	s, err := b.st.Stream(name)
	if err == nil && s.Revoked {
		err = fmt.Errorf("stream %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return tracker.MintedToken{}, err
	}
	secret, err := b.st.ViewerTokenSecret()
	if err != nil {
		return tracker.MintedToken{}, err
	}
	exp := time.Now().Add(ttl).Truncate(time.Second)
	b.record("token_mint", name, "ttl "+ttl.String())
	return tracker.MintedToken{Stream: name, Token: viewertoken.Mint(secret, name, exp), ExpiresAt: exp.UTC()}, nil
}

func (b storeBackend) tokenSecret(context.Context) (string, error) {
	secret, err := b.st.ViewerTokenSecret()
	if err != nil {
		return "", err
	}
	b.record("token_secret_read", "", "")
	return base64.RawURLEncoding.EncodeToString(secret), nil
}

func (b storeBackend) rotateAdminToken(context.Context) (string, error) {
	tok, err := b.st.RotateAdminToken()
	if err == nil {
		b.record("rotate_admin_token", "", "")
	}
	return tok, err
}

func (b storeBackend) audit(context.Context) ([]store.AuditEntry, error) { return b.st.Audit(100) }

// The server side.

func (b *apiBackend) setPrivate(ctx context.Context, name string, private bool) (si tracker.StreamInfo, err error) {
	err = b.do(ctx, "PUT", "/api/streams/"+url.PathEscape(name)+"/private", map[string]bool{"private": private}, &si)
	return
}

func (b *apiBackend) mintToken(ctx context.Context, name string, ttl time.Duration) (mt tracker.MintedToken, err error) {
	err = b.do(ctx, "POST", "/api/streams/"+url.PathEscape(name)+"/tokens", map[string]int64{"ttl_seconds": int64(ttl / time.Second)}, &mt)
	return
}

func (b *apiBackend) tokenSecret(ctx context.Context) (string, error) {
	var out struct {
		Secret string `json:"secret_base64url"`
	}
	err := b.do(ctx, "GET", "/api/viewer-token-secret", nil, &out)
	return out.Secret, err
}

func (b *apiBackend) rotateAdminToken(ctx context.Context) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	err := b.do(ctx, "POST", "/api/admin/token", nil, &out)
	return out.Token, err
}

func (b *apiBackend) audit(ctx context.Context) ([]store.AuditEntry, error) {
	var out struct {
		Entries []store.AuditEntry `json:"entries"`
	}
	err := b.do(ctx, "GET", "/api/audit", nil, &out)
	return out.Entries, err
}
