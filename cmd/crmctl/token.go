package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"crm/internal/auth"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "user id to put in sub (default: a new random UUID)")
	var roles listFlag
	fs.Var(&roles, "role", "role to grant (repeatable; default admin)")
	ttl := fs.Duration("ttl", 24*time.Hour, "validity of the token")
	dataDir := fs.String("data-dir", "", "read the key from DATA_DIR/secret.key (embedded mode; default $DATA_DIR or ./data)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: crmctl token [--sub UUID] [--role ROLE]... [--ttl 24h] [--data-dir DIR]\n\n"+
			"Mints an HS256 token signed with SECRET_KEY, or with the key the embedded\n"+
			"service generated in DATA_DIR/secret.key when SECRET_KEY is not set.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected argument %q", fs.Arg(0))
	}
	key, err := tokenKey(getenv, *dataDir)
	if err != nil {
		return err
	}
	if *sub == "" {
		*sub = uuid.NewString()
	} else if u, err := uuid.Parse(*sub); err != nil || u.String() != strings.ToLower(*sub) {
		return fmt.Errorf("token: --sub %q is not a UUID (a user id such as %s)", *sub, uuid.NewString())
	}
	if len(roles) == 0 {
		roles = listFlag{"admin"}
	}
	known := auth.DefaultRoles()
	if rp := getenv("ROLE_PERMISSIONS"); rp != "" {
		var err error
		if known, err = auth.ParseRoles(rp); err != nil {
			return fmt.Errorf("token: ROLE_PERMISSIONS: %w", err)
		}
	}
	for _, r := range roles {
		if _, ok := known[r]; !ok {
			names := make([]string, 0, len(known))
			for n := range known {
				names = append(names, n)
			}
			slices.Sort(names)
			return fmt.Errorf("token: --role %q grants nothing: the roles are %s (ROLE_PERMISSIONS changes them)", r, strings.Join(names, ", "))
		}
	}
	if *ttl <= 0 {
		return errors.New("token: --ttl must be positive")
	}
	tok, err := auth.Mint([]byte(key), *sub, roles, *ttl, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// tokenKey returns the signing key: SECRET_KEY, or the key the embedded
// service generated in DATA_DIR/secret.key. With both SECRET_KEY and
// --data-dir the two must agree: silently preferring one would mint tokens
// that the service using the other refuses.
func tokenKey(getenv func(string) string, dataDir string) (string, error) {
	env := getenv("SECRET_KEY")
	if env != "" && dataDir == "" {
		return env, nil
	}
	dir := dataDir
	if dir == "" {
		dir = getenv("DATA_DIR")
	}
	if dir == "" {
		dir = "./data"
	}
	file := filepath.Join(dir, "secret.key")
	b, err := os.ReadFile(file)
	switch {
	case err != nil && env != "":
		return "", fmt.Errorf("token: --data-dir %s has no key (%w) and SECRET_KEY is set: drop --data-dir to sign with SECRET_KEY", dir, err)
	case err != nil:
		return "", fmt.Errorf("token: SECRET_KEY is not set and there is no key in %s (start the service once, or set SECRET_KEY): %w", file, err)
	}
	key := strings.TrimSpace(string(b))
	if env != "" && env != key {
		return "", fmt.Errorf("token: SECRET_KEY and %s (--data-dir) are different keys, and a token signed with one is refused by a service using the other: unset SECRET_KEY or drop --data-dir", file)
	}
	return key, nil
}
