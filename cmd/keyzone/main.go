// Command keyzone runs a Keyzone node (`keyzone server`), a whole dev
// zone in one process (`keyzone dev`), and the admin CLI that talks to
// either through the Go SDK.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "keyzone",
		Short:         "Keyzone: a multi-zone key management service",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServerCommand(), newDevCommand(), newBenchCommand())
	addClientCommands(root)
	return root
}
