package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newCompletionCommand builds `keyzone completion bash|zsh`. The scripts
// are cobra's: they ask the binary itself (`keyzone __complete ...`) for
// the candidates, so they complete the commands and flags of the binary
// that is installed, not of the one that wrote the script.
func newCompletionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh",
		Short: "Print the shell completion script for bash or zsh",
		Long: `Print the shell completion script for bash or zsh on stdout.

bash (needs the bash-completion package):
  keyzone completion bash > /etc/bash_completion.d/keyzone     # every user
  keyzone completion bash > ~/.local/share/bash-completion/completions/keyzone
  source <(keyzone completion bash)                            # this shell only

zsh:
  keyzone completion zsh > "${fpath[1]}/_keyzone"   # then start a new shell
  # if completion is not enabled yet, add to ~/.zshrc: autoload -U compinit; compinit`,
		Args:                  cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs:             []string{"bash", "zsh"},
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return cmd.Root().GenBashCompletionV2(out, true)
			case "zsh":
				return cmd.Root().GenZshCompletion(out)
			}
			return fmt.Errorf("shell %q: want bash or zsh", args[0])
		},
	}
}
