package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// command is one subcommand: its flags, each with a BANYAN_* environment twin.
type command struct {
	name    string
	summary string
	usage   string // argument synopsis after the flags, e.g. "create|list|revoke [NAME]"
	fs      *flag.FlagSet
}

func newCommand(name, usage, summary string) *command {
	fs := flag.NewFlagSet("banyan "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &command{name: name, usage: usage, summary: summary, fs: fs}
}

// envName is the environment twin of a flag: --turn-secret → BANYAN_TURN_SECRET.
func envName(flagName string) string {
	return "BANYAN_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (c *command) String(p *string, name, def, help string) { c.fs.StringVar(p, name, def, help) }
func (c *command) Bool(p *bool, name string, def bool, help string) {
	c.fs.BoolVar(p, name, def, help)
}
func (c *command) Int(p *int, name string, def int, help string) { c.fs.IntVar(p, name, def, help) }
func (c *command) Int64(p *int64, name string, def int64, help string) {
	c.fs.Int64Var(p, name, def, help)
}
func (c *command) Float(p *float64, name string, def float64, help string) {
	c.fs.Float64Var(p, name, def, help)
}
func (c *command) Duration(p *time.Duration, name string, def time.Duration, help string) {
	c.fs.DurationVar(p, name, def, help)
}

// errHelp means --help was asked for and printed.
var errHelp = errors.New("help printed")

// usageError is an operator mistake: printed as one line, exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parse applies environment twins, then the command line (which wins).
func (c *command) parse(args []string, stdout io.Writer) error {
	var envErr error
	c.fs.VisitAll(func(f *flag.Flag) {
		if v, ok := os.LookupEnv(envName(f.Name)); ok && envErr == nil {
			if err := c.fs.Set(f.Name, v); err != nil {
				envErr = usageError{fmt.Sprintf("banyan %s: bad value %q in %s: %v", c.name, v, envName(f.Name), err)}
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printHelp(stdout)
			return errHelp
		}
		return usageError{fmt.Sprintf("banyan %s: %v (see banyan %s --help)", c.name, err, c.name)}
	}
	return nil
}

func (c *command) printHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: banyan %s [flags] %s\n\n%s\n\nFlags (each also read from its environment variable):\n", c.name, c.usage, c.summary)
	c.fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%-18s %s%s\n  %-20s   env %s\n", f.Name, f.Usage, def, "", envName(f.Name))
	})
}
