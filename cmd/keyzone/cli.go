package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keyzone/keyzone/client"
)

// addClientCommands adds the admin CLI (key, encrypt, decrypt,
// generate-data-key, re-encrypt, org, token, whoami, cluster, zone,
// health, audit) and shell completion to root. The commands reach a node
// through the Go SDK, at KEYZONE_ADDR with a token from the environment
// (see tokenSource) unless --addr and --token say otherwise.
func addClientCommands(root *cobra.Command) {
	root.AddCommand(newClientCommands(os.Getenv)...)
	root.AddCommand(newCompletionCommand())
}

// tokenSource says where a command takes its token from when --token is
// not given. Each variable can also name a file instead, as VAR_FILE
// (KEYZONE_OPERATOR_TOKEN_FILE, as a node's container has it).
type tokenSource int

const (
	// orgToken is $KEYZONE_TOKEN alone: key and crypto commands, which the
	// operator token may not use.
	orgToken tokenSource = iota
	// orgThenOperator is $KEYZONE_TOKEN, else $KEYZONE_OPERATOR_TOKEN:
	// token commands (an org-admin manages its organization's tokens, the
	// operator any organization's) and whoami.
	orgThenOperator
	// operatorThenOrg is $KEYZONE_OPERATOR_TOKEN, else $KEYZONE_TOKEN:
	// organization and cluster commands (cluster, zone, snapshots,
	// peers, verify).
	operatorThenOrg
)

// Environment variables of the tokens.
const (
	envToken         = "KEYZONE_TOKEN"
	envOperatorToken = "KEYZONE_OPERATOR_TOKEN"
)

// newClientCommands builds the client command tree; getenv is how it
// reads KEYZONE_ADDR and the tokens, so tests can run it in-process.
func newClientCommands(getenv func(string) string) []*cobra.Command {
	g := &cliGlobal{getenv: getenv}
	cmds := []struct {
		cmd    *cobra.Command
		tokens tokenSource
	}{
		{newKeyCommand(g), orgToken},
		{newEncryptCommand(g), orgToken},
		{newDecryptCommand(g), orgToken},
		{newGenerateDataKeyCommand(g), orgToken},
		{newReEncryptCommand(g), orgToken},
		{newOrgCommand(g), operatorThenOrg},
		{newTokenCommand(g), orgThenOperator},
		{newWhoAmICommand(g), orgThenOperator},
		{newClusterCommand(g), operatorThenOrg},
		{newZoneCommand(g), operatorThenOrg},
		{newHealthCommand(g), orgToken}, // sends no token
	}
	var out []*cobra.Command
	for _, c := range cmds {
		src := c.tokens
		// Only one command runs per process: the top-level command it
		// belongs to says where its token comes from.
		c.cmd.PersistentPreRun = func(*cobra.Command, []string) { g.tokens = src }
		f := c.cmd.PersistentFlags()
		f.StringVar(&g.addr, "addr", "", "node API address (default $KEYZONE_ADDR)")
		f.StringVar(&g.token, "token", "", "API token (default "+src.defaultHelp()+")")
		f.StringVar(&g.caFile, "ca-file", "", "PEM bundle of the CAs trusted for an https node address (default $"+envCAFile+"; else the system's)")
		addOutputFlag(c.cmd, g)
		addTLSHints(c.cmd)
		out = append(out, c.cmd)
	}
	// audit reads a file: no node, no token.
	audit := newAuditCommand(g)
	addOutputFlag(audit, g)
	return append(out, audit)
}

// addOutputFlag adds -o table|json to cmd and its subcommands.
func addOutputFlag(cmd *cobra.Command, g *cliGlobal) {
	cmd.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
}

// defaultHelp names the variables of s for --token's help.
func (s tokenSource) defaultHelp() string {
	switch s {
	case orgThenOperator:
		return "$" + envToken + ", else $" + envOperatorToken
	case operatorThenOrg:
		return "$" + envOperatorToken + ", else $" + envToken
	}
	return "$" + envToken
}

// vars lists the variables of s in the order they are tried.
func (s tokenSource) vars() []string {
	switch s {
	case orgThenOperator:
		return []string{envToken, envOperatorToken}
	case operatorThenOrg:
		return []string{envOperatorToken, envToken}
	}
	return []string{envToken}
}

// cliGlobal holds the flags every client command shares. Only one command
// runs per process, so one value serves them all.
type cliGlobal struct {
	getenv func(string) string
	addr   string
	token  string
	caFile string
	output string
	tokens tokenSource
}

// connect checks the output format and returns a client of the node.
func (g *cliGlobal) connect() (*client.Client, error) {
	addr, token, err := g.endpoint()
	if err != nil {
		return nil, err
	}
	return client.New(addr, token, g.clientOptions()...)
}

// clientOptions are the options every client of a command takes: the CA
// bundle of --ca-file, else of $KEYZONE_CA_FILE.
func (g *cliGlobal) clientOptions(opts ...client.Option) []client.Option {
	ca := g.caFile
	if ca == "" {
		ca = g.getenv(envCAFile)
	}
	return append(opts, client.WithCAFile(ca))
}

// checkOutput refuses an output format render does not know, before the
// command does anything.
func (g *cliGlobal) checkOutput() error {
	if g.output != "table" && g.output != "json" {
		return fmt.Errorf("--output %q: want table or json", g.output)
	}
	return nil
}

// endpoint checks the output format and returns the node's address and
// the token, from the flags or the environment.
func (g *cliGlobal) endpoint() (addr, token string, err error) {
	if err := g.checkOutput(); err != nil {
		return "", "", err
	}
	addr = g.addr
	if addr == "" {
		addr = g.getenv("KEYZONE_ADDR")
	}
	if addr == "" {
		return "", "", errors.New("no node address: set KEYZONE_ADDR or pass --addr (e.g. http://127.0.0.1:8200)")
	}
	if token = g.token; token != "" {
		return addr, token, nil
	}
	vars := g.tokens.vars()
	for _, name := range vars {
		if token, err = g.envToken(name); token != "" || err != nil {
			return addr, token, err
		}
	}
	return "", "", fmt.Errorf("no API token: set %s or pass --token", strings.Join(vars, " or "))
}

// envToken returns the token in the variable name, else in the file named
// by name_FILE, else "".
func (g *cliGlobal) envToken(name string) (string, error) {
	if v := strings.TrimSpace(g.getenv(name)); v != "" {
		return v, nil
	}
	file := g.getenv(name + "_FILE")
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s_FILE: %s is empty", name, file)
	}
	return v, nil
}

// render prints v as indented JSON with -o json, else calls table with a
// tab-aligned writer.
func (g *cliGlobal) render(cmd *cobra.Command, v any, table func(w io.Writer)) error {
	out := cmd.OutOrStdout()
	if g.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// cliContext returns the command's context.
func cliContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// parseContextFlags turns repeated key=value flags into an encryption
// context; none gives nil.
func parseContextFlags(flag string, pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid --%s %q: want key=value", flag, p)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("invalid --%s: key %q given twice", flag, k)
		}
		m[k] = v
	}
	return m, nil
}

// readInput reads the file named by path, or stdin when path is "" or "-".
func readInput(cmd *cobra.Command, path string) ([]byte, error) {
	if path == "" || path == "-" {
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read --in: %w", err)
	}
	return b, nil
}
