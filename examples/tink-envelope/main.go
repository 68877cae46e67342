// Command tink-envelope encrypts a file with Tink's KMS envelope AEAD: a
// fresh AES-256-GCM data key (DEK) per file encrypts the data locally, and
// a Keyzone key wraps the DEK. Decryption unwraps the DEK through Keyzone
// (in any zone holding the key) and decrypts locally. Only the DEK, never
// the file, goes to Keyzone.
//
//	tink-envelope encrypt -key KEY_ID -in report.pdf -out report.pdf.enc
//	tink-envelope decrypt -key KEY_ID -in report.pdf.enc -out report.pdf -addr $KEYZONE_ADDR_ZONE_B
//
// -addr defaults to $KEYZONE_ADDR and the token is $KEYZONE_TOKEN (or
// -token). -associated-data binds the ciphertext to a label (default: the
// key URI); decryption must give the same.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/tink-crypto/tink-go/v2/aead"

	"github.com/keyzone/keyzone/client/tinkkms"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tink-envelope:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || (args[0] != "encrypt" && args[0] != "decrypt") {
		return errors.New("usage: tink-envelope encrypt|decrypt -key KEY_ID -in FILE -out FILE [-addr URL] [-token T] [-associated-data S]")
	}
	mode := args[0]
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	keyID := fs.String("key", "", "Keyzone key id (required)")
	in := fs.String("in", "", "input file (required)")
	out := fs.String("out", "", "output file (required)")
	addr := fs.String("addr", os.Getenv("KEYZONE_ADDR"), "Keyzone node to use (default $KEYZONE_ADDR)")
	token := fs.String("token", os.Getenv("KEYZONE_TOKEN"), "API token (default $KEYZONE_TOKEN)")
	ad := fs.String("associated-data", "", "associated data bound to the ciphertext (default: the key URI)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *keyID == "" || *in == "" || *out == "" {
		return errors.New("-key, -in and -out are required")
	}
	uri := tinkkms.Prefix + *keyID
	if *ad == "" {
		*ad = uri
	}

	kms, err := tinkkms.NewClient(uri, tinkkms.WithAddress(*addr), tinkkms.WithToken(*token))
	if err != nil {
		return err
	}
	kek, err := kms.GetAEAD(uri)
	if err != nil {
		return err
	}
	envelope := aead.NewKMSEnvelopeAEAD2(aead.AES256GCMKeyTemplate(), kek)

	data, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	var result []byte
	if mode == "encrypt" {
		result, err = envelope.Encrypt(data, []byte(*ad))
	} else {
		result, err = envelope.Decrypt(data, []byte(*ad))
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", mode, *in, err)
	}
	if err := os.WriteFile(*out, result, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%sed %s (%d bytes) -> %s (%d bytes) with %s via %s\n", mode, *in, len(data), *out, len(result), uri, *addr)
	return nil
}
