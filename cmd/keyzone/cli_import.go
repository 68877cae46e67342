package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Bounds of imported material, as the server enforces them; checked here
// too so that a wrong file is refused before anything is sent.
const (
	minImportMaterial = 16
	maxImportMaterial = 64
)

func newKeyImportCommand(g *cliGlobal) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "import ID --material-file FILE",
		Short: "Import key material into a key of origin external (sealed here, never sent in clear)",
		Long: `Import key material you generated (16 to 64 raw bytes, e.g. "openssl rand 32 > material.bin")
into a key created with --origin external. The command fetches fresh import
parameters, seals the material to their X25519 public key with HPKE on this
machine, and sends only the sealed form with the single-use import token.
Keyzone derives the version key from the material with a fresh random salt:
the first import enables the key, each later one adds a version.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			material, err := readMaterial(cmd, file)
			if err != nil {
				return err
			}
			defer clear(material)
			c, err := g.connect()
			if err != nil {
				return err
			}
			k, err := c.ImportMaterial(cliContext(cmd), args[0], material)
			if err != nil {
				return err
			}
			return g.renderKey(cmd, k)
		},
	}
	cmd.Flags().StringVar(&file, "material-file", "", "file holding the raw key material (- for stdin)")
	_ = cmd.MarkFlagRequired("material-file")
	return cmd
}

// readMaterial reads the key material file, refusing a size the server
// would refuse.
func readMaterial(cmd *cobra.Command, file string) ([]byte, error) {
	var r io.Reader = cmd.InOrStdin()
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxImportMaterial+1))
	if err != nil {
		return nil, fmt.Errorf("read key material: %w", err)
	}
	if len(b) < minImportMaterial || len(b) > maxImportMaterial {
		clear(b)
		if len(b) > maxImportMaterial {
			return nil, fmt.Errorf("key material file %s holds more than %d bytes; it must hold %d to %d raw bytes", file, maxImportMaterial, minImportMaterial, maxImportMaterial)
		}
		return nil, fmt.Errorf("key material file %s holds %d bytes; it must hold %d to %d raw bytes", file, len(b), minImportMaterial, maxImportMaterial)
	}
	return b, nil
}
