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
// generate-data-key, re-encrypt, cluster, zone, health) and shell
// completion to root. The commands reach a node through the Go SDK, at
// KEYZONE_ADDR with KEYZONE_TOKEN unless --addr and --token say otherwise.
func addClientCommands(root *cobra.Command) {
	root.AddCommand(newClientCommands(os.Getenv)...)
	root.AddCommand(newCompletionCommand())
}

// newClientCommands builds the client command tree; getenv is how it
// reads KEYZONE_ADDR and KEYZONE_TOKEN, so tests can run it in-process.
func newClientCommands(getenv func(string) string) []*cobra.Command {
	g := &cliGlobal{getenv: getenv}
	cmds := []*cobra.Command{
		newKeyCommand(g),
		newEncryptCommand(g),
		newDecryptCommand(g),
		newGenerateDataKeyCommand(g),
		newReEncryptCommand(g),
		newClusterCommand(g),
		newZoneCommand(g),
		newHealthCommand(g),
	}
	for _, c := range cmds {
		f := c.PersistentFlags()
		f.StringVar(&g.addr, "addr", "", "node API address (default $KEYZONE_ADDR)")
		f.StringVar(&g.token, "token", "", "API token (default $KEYZONE_TOKEN)")
		f.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
		_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	}
	return cmds
}

// cliGlobal holds the flags every client command shares. Only one command
// runs per process, so one value serves them all.
type cliGlobal struct {
	getenv func(string) string
	addr   string
	token  string
	output string
}

// connect checks the output format and returns a client of the node.
func (g *cliGlobal) connect() (*client.Client, error) {
	addr, token, err := g.endpoint()
	if err != nil {
		return nil, err
	}
	return client.New(addr, token)
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
	token = g.token
	if token == "" {
		token = g.getenv("KEYZONE_TOKEN")
	}
	if token == "" {
		return "", "", errors.New("no API token: set KEYZONE_TOKEN or pass --token")
	}
	return addr, token, nil
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
