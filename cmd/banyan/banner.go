package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/banyan-live/banyan/store"
)

// This file holds what `banyan up` tells a person about the admin token and
// the CLI (issue 21): every start says where the token lives, and the
// commands it prints work as printed, pasted into the same shell.

// printAdminToken writes the token itself when this start made it, and on
// every start where it is kept and how to log in: a first start that
// failed after making the token (a busy port) never showed it.
func (s *system) printAdminToken(w io.Writer, web string) {
	path := s.store.AdminTokenPath()
	if s.adminToken != "" {
		fmt.Fprintf(w, "  Admin token (shown once; also kept in %s):\n    %s\n", path, s.adminToken)
	} else {
		fmt.Fprintf(w, "  Admin token: kept in %s  (show it: cat %s)\n", path, shellQuote(path))
	}
	fmt.Fprintf(w, "    Log in at %s/dashboard with it; the banyan CLI reads it from there.\n\n", web)
}

// keyCreateLine is a `banyan key create` command that works as printed:
// the binary as this process was started (bin/banyan under make run), and
// --server set to the address the HTTP server really listens on.
func keyCreateLine(server, dataDir string) string {
	return fmt.Sprintf("%s key create NAME --server %s --data %s", shellQuote(selfCommand()), server, shellQuote(dataDir))
}

// selfCommand is how to run this binary again from the same directory:
// os.Args[0] when it names a path (./bin/banyan) or is found on PATH,
// else the executable's absolute path.
func selfCommand() string {
	a := os.Args[0]
	if strings.ContainsRune(a, filepath.Separator) {
		return a
	}
	if p, err := exec.LookPath(a); err == nil && filepath.Base(p) == a {
		return a
	}
	if exe, err := os.Executable(); err == nil {
		return exe
	}
	return a
}

// cliServerURL is the URL a CLI on this machine reaches the HTTP server
// at: its listening address, loopback for a wildcard one.
func cliServerURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:=,@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// startFailed adds to a failed start where the admin token is, if the
// start got as far as making it.
func startFailed(err error, dataDir string) error {
	if _, rerr := store.ReadAdminTokenFile(dataDir); rerr != nil {
		return err
	}
	path := filepath.Join(dataDir, "admin.token")
	return errors.Join(err, fmt.Errorf("(the admin token is kept in %s; the next start will say so again)", path))
}
